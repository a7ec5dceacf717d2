// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package watch

// The arguments and results of the sandbox's control methods for watches,
// which runsc's "watch" subcommand calls (encoded as JSON by urpc).

// StartArgs asks for a watch on a process of a container.
type StartArgs struct {
	// ContainerID is the container whose process is watched.
	ContainerID string
	// PID is the process, in the sandbox's root PID namespace as
	// "runsc ps" shows it; 0 for the container's first process.
	PID int32
	// Addr is the first watched byte; Symbol, if set, names it instead
	// (with Offset added), resolved in the process's executable.
	Addr   uint64
	Symbol string
	Offset uint64
	// Len is the number of bytes watched: 1, 2, 4 or 8 (1 for "x").
	Len uint64
	// Access is "w" (writes), "rw" (reads and writes) or "x" (the
	// execution of the instruction at Addr).
	Access string
	// Count, if not zero, ends the watch after that many hits.
	Count uint64
}

// StartResult describes a started watch.
type StartResult struct {
	// ID names the watch in later calls.
	ID uint64
	// Addr is the watched address, Symbol's once resolved.
	Addr uint64
	// Symbol names Addr in the executable ("counter+0x0"), if it can.
	Symbol string
	// PID is the watched process.
	PID int32
	// Threads is the number of threads watched at the start.
	Threads int
}

// ReadArgs asks for the hits of watch ID that its reader has not read yet.
type ReadArgs struct {
	ID uint64
	// WaitMillis bounds the time that Read waits for a hit.
	WaitMillis int64
}

// Hit is one hit, as the host reports it.
type Hit struct {
	// Time is the host's time of the hit, in nanoseconds since the epoch.
	Time int64
	// PID and TID are in the sandbox's root PID namespace.
	PID, TID int32
	// Comm is the thread's name.
	Comm string
	// Addr and Len are the watched range.
	Addr, Len uint64
	// Value holds the watched bytes after the access; empty if they
	// could not be read.
	Value []byte
	// IP is the thread's instruction pointer when the hit is reported:
	// for a data access, the instruction after the one that made it (a
	// debug trap); for an execution breakpoint, Addr itself (a fault).
	IP uint64
	// Symbol and IPSymbol name Addr and IP in the executable of the
	// watched process ("counter+0x0", "bump+0x12"); empty outside it.
	Symbol, IPSymbol string
}

// ReadResult is the hits read, in order, and whether the watch ended.
type ReadResult struct {
	Hits []Hit
	// Lost counts the hits dropped since the last read because the
	// reader fell behind.
	Lost uint64
	// Missed counts the threads that the watch could not follow (a new
	// thread without a free slot).
	Missed uint64
	// Ended, if not empty, says why the watch ended; nothing more
	// follows. PerPID then counts its hits by process.
	Ended  string
	PerPID map[int32]uint64
}

// StopArgs asks to end watch ID, for Reason; its next Read returns the
// hits still queued and the end.
type StopArgs struct {
	ID     uint64
	Reason string
}

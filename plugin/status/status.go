// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

// Package status holds the lines the hwbp plugin writes to the sentry's log,
// which operators and end-to-end tests look for. It has no dependencies, so
// that tests can use it without building the plugin.
package status

// Version identifies this build of the plugin in logs.
const Version = "0.1.0"

// StartMessage is logged by the sentry when it constructs a platform that
// the plugin wraps, followed by ` on platform "NAME"`.
const StartMessage = "hwbp: plugin " + Version + " active"

// ReleasedMessage is logged each time the last thread holding ptrace
// debug-register state goes away, followed by the number of states ever
// created, so that tests can prove that nothing leaks.
const ReleasedMessage = "hwbp: no thread holds debug-register state; created so far:"

// EventsOpenedMessage is logged when the systrap back end opens host perf
// breakpoint events on a stub process, and EventsClosedMessage when it
// closes them; both are followed by the number of stub processes that
// carry events afterwards, then HostFDsMessage and the number of host event
// fds the sentry holds, so that tests can prove that none are left and that
// they stay bounded.
const (
	EventsOpenedMessage = "hwbp: opened host breakpoint events on a stub process; processes with events:"
	EventsClosedMessage = "hwbp: closed host breakpoint events of a stub process; processes with events:"
	HostFDsMessage      = ", host event fds:"
)

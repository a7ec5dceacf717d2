package systrap

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gvisor-hwbp/hwbp/sentry/hwbp"
)

// perf_event_attr flag bits that golang.org/x/sys/unix does not name
// (include/uapi/linux/perf_event.h).
const (
	perfBitInheritThread = 1 << 35
	perfBitRemoveOnExec  = 1 << 36
	perfBitSigtrap       = 1 << 37
)

// bp_type values (include/uapi/linux/hw_breakpoint.h).
const (
	hwBreakpointW  = 2
	hwBreakpointRW = 3
	hwBreakpointX  = 4
)

// trapPerf is si_code TRAP_PERF: a SIGTRAP sent by a perf event with
// sigtrap set (include/uapi/asm-generic/siginfo.h).
const trapPerf = 6

// trapPerfFlagAsync is set in si_perf_flags when SIGTRAP was blocked at the
// hit, so that the signal is not the hit's synchronous report.
const trapPerfFlagAsync = 1

// sigDataMagic marks the sig_data of hwbp's events; the low byte is the
// event's position.
const sigDataMagic = 0x6877627000 // "hwbp\0"

// entry is one breakpoint as the host's perf breakpoint PMU takes it: a
// debug register's address, type and length.
type entry struct {
	addr uint64
	rw   uint8 // DR7 R/W field: 0 exec, 1 write, 3 read/write
	ln   uint8 // DR7 LEN field
}

// key orders entries.
func (e entry) key() uint64 { return e.addr<<4 | uint64(e.rw)<<2 | uint64(e.ln) }

// entryOf returns slot's entry in img.
func entryOf(img *hwbp.Image, slot int) entry {
	return entry{addr: img.Addr[slot], rw: img.DR7.RW(slot), ln: img.DR7.Len(slot)}
}

// attr returns the perf_event_attr of the event at position pos carrying e,
// for a single thread or, with inherit, for the nursery thread whose future
// threads inherit it. Every event is opened disabled and enabled by ioctl,
// so that PERF_EVENT_IOC_MODIFY_ATTRIBUTES, which refuses any change besides
// the breakpoint's address, type and length, can move it between entries.
//
// With counting, the event only counts the hits (sample_period 0): the host
// takes them without stopping the stub thread (see count.go).
func (e entry) attr(pos int, inherit, counting bool) unix.PerfEventAttr {
	a := unix.PerfEventAttr{
		Type:     unix.PERF_TYPE_BREAKPOINT,
		Size:     uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Sample:   1, // sample_period: every hit signals
		Bits:     unix.PerfBitDisabled | unix.PerfBitExcludeKernel | unix.PerfBitExcludeHv | perfBitRemoveOnExec | perfBitSigtrap,
		Ext1:     e.addr,
		Sig_data: sigDataMagic | uint64(pos),
	}
	if counting {
		a.Sample = 0
		a.Bits &^= perfBitSigtrap
	}
	if inherit {
		a.Bits |= unix.PerfBitInherit | perfBitInheritThread
	}
	switch e.rw {
	case 0:
		// Linux arch/x86/kernel/hw_breakpoint.c: arch_build_bp_info
		// takes instruction breakpoints only with bp_len
		// sizeof(long).
		a.Bp_type, a.Ext2 = hwBreakpointX, 8
	case 1:
		a.Bp_type = hwBreakpointW
	default:
		a.Bp_type = hwBreakpointRW
	}
	if e.rw != 0 {
		// DR7 LEN: 0, 1, 3, 2 mean 1, 2, 4, 8 bytes.
		a.Ext2 = [4]uint64{1, 2, 8, 4}[e.ln]
	}
	return a
}

// perfHost is the host's perf event interface as the back end uses it. The
// back end reaches the host only through it, so that tests can inject host
// failures.
type perfHost interface {
	// open opens a breakpoint event on host thread tid.
	open(a *unix.PerfEventAttr, tid int32) (int, error)
	// modify moves the breakpoint of event fd, and of the events inherited
	// from it, to a's address, type and length.
	modify(fd int, a *unix.PerfEventAttr) error
	// enable enables or disables event fd and the events inherited from
	// it.
	enable(fd int, on bool) error
	// count reads the count of event fd and of the events inherited from
	// it.
	count(fd int) (uint64, error)
	// close closes event fd.
	close(fd int)
}

// hostPerf is the host kernel's perf_event_open(2).
type hostPerf struct{}

func (hostPerf) open(a *unix.PerfEventAttr, tid int32) (int, error) { return perfOpen(a, tid) }
func (hostPerf) modify(fd int, a *unix.PerfEventAttr) error         { return perfModify(fd, a) }
func (hostPerf) enable(fd int, on bool) error                       { return perfEnable(fd, on) }
func (hostPerf) count(fd int) (uint64, error)                       { return perfCount(fd) }
func (hostPerf) close(fd int)                                       { unix.Close(fd) }

// perfOpen opens a breakpoint event on host thread tid.
func perfOpen(a *unix.PerfEventAttr, tid int32) (int, error) {
	fd, _, errno := unix.RawSyscall6(unix.SYS_PERF_EVENT_OPEN, uintptr(unsafe.Pointer(a)), uintptr(tid), ^uintptr(0) /* cpu -1 */, ^uintptr(0) /* no group */, unix.PERF_FLAG_FD_CLOEXEC, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// perfModify moves the breakpoint of event fd, and of the events inherited
// from it, to a's address, type and length.
func perfModify(fd int, a *unix.PerfEventAttr) error {
	_, _, errno := unix.RawSyscall(unix.SYS_IOCTL, uintptr(fd), unix.PERF_EVENT_IOC_MODIFY_ATTRIBUTES, uintptr(unsafe.Pointer(a)))
	if errno != 0 {
		return fmt.Errorf("PERF_EVENT_IOC_MODIFY_ATTRIBUTES: %w", errno)
	}
	return nil
}

// perfEnable enables or disables event fd and the events inherited from it.
func perfEnable(fd int, enable bool) error {
	req := uintptr(unix.PERF_EVENT_IOC_DISABLE)
	if enable {
		req = unix.PERF_EVENT_IOC_ENABLE
	}
	_, _, errno := unix.RawSyscall(unix.SYS_IOCTL, uintptr(fd), req, 0)
	if errno != 0 {
		return fmt.Errorf("perf event enable=%t: %w", enable, errno)
	}
	return nil
}

// perfCount reads the count of event fd (and of the events inherited from
// it): how many times its breakpoint was hit.
func perfCount(fd int) (uint64, error) {
	var b [8]byte
	n, err := unix.Read(fd, b[:])
	if err != nil {
		return 0, err
	}
	if n != len(b) {
		return 0, fmt.Errorf("short read of perf event count: %d bytes", n)
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// sigPerfData returns si_perf_data and si_perf_flags of a TRAP_PERF
// siginfo: they follow si_addr (8 bytes) in the fault union, whose fields
// start 16 bytes into siginfo_t; linux.SignalInfo.Fields starts there too.
func sigPerfData(fields []byte) (data uint64, flags uint32) {
	return binary.LittleEndian.Uint64(fields[8:]), binary.LittleEndian.Uint32(fields[20:])
}

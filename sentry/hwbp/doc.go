// Package hwbp is the core hardware-breakpoint API of the sentry: the
// equivalent of Linux's kernel/events/hw_breakpoint.c plus the x86 parts of
// arch/x86/kernel/hw_breakpoint.c, without any knowledge of gVisor's
// platforms or of ptrace.
//
// Consumers (the guest's ptrace debug registers, perf_event_open, operator
// tools) describe breakpoints with perf-like attributes (Attr) and register
// them as Breakpoint events, bound either to one Task or to every task of the
// sandbox (Registry.RegisterWide). Platform back ends ask a Task for its
// Image, the DR0-DR3/DR7 values that its enabled events resolve to, load it
// into whatever debug registers they drive, and report hits with Image.Fire.
//
// Invariants:
//   - A Task never has more events (enabled or not, task-bound plus
//     sandbox-wide) than there are debug address registers (Slots). As in
//     Linux's reserve_bp_slot, a disabled event holds its slot.
//   - Every registered Attr passed Validate: its range lies entirely inside
//     the user address space, so no back end can be asked to watch sentry or
//     host kernel memory on a guest's behalf.
//   - A failed Register or Modify changes nothing.
//   - Registry.Active is a single atomic load and is false whenever no
//     enabled event exists, so platform hot paths cost nothing when unused.
//
// All methods are safe for concurrent use. Errors wrap unix.Errno values
// (errors.Is(err, unix.EINVAL) etc.) so that guest-facing consumers can
// return exactly the errno Linux returns.
package hwbp

// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package hwbp

import (
	"fmt"
	"math/rand"
	"testing"

	"golang.org/x/sys/unix"
)

// refModel is a deliberately naive model of a Registry: plain slices, no
// counters, every answer recomputed from scratch.
type refModel struct {
	tasks    [][]int // event ids bound to each task, in registration order
	released []bool
	attrs    []Attr
	live     []bool
	owner    []int // the task each event id was registered for
}

// refErrno is Linux's verdict on an attribute, written as a table of what
// x86_64 accepts rather than as a sequence of checks.
func refErrno(a Attr) unix.Errno {
	valid := map[Type][]uint64{TypeW: {1, 2, 4, 8}, TypeRW: {1, 2, 4, 8}, TypeX: {8}}
	lens, ok := valid[a.Type]
	if !ok {
		return unix.EINVAL
	}
	found := false
	for _, l := range lens {
		found = found || l == a.Len
	}
	if !found {
		// Larger powers of two ask for an AMD range breakpoint.
		pow2 := false
		for l := uint64(16); l != 0; l <<= 1 {
			pow2 = pow2 || l == a.Len
		}
		if a.Type != TypeX && pow2 && a.Addr%a.Len == 0 {
			return unix.EOPNOTSUPP
		}
		return unix.EINVAL
	}
	size := a.Len
	if a.Type == TypeX {
		size = 1
	}
	if a.Addr%size != 0 || a.Addr > 0x7ffffffff000-size {
		return unix.EINVAL
	}
	return 0
}

func (m *refModel) used(task int) int { return len(m.tasks[task]) }

func (m *refModel) register(task int, a Attr) (int, unix.Errno) {
	if m.released[task] {
		return -1, unix.ESRCH
	}
	if a.Type == TypeEmpty || a.Type == TypeRW|TypeX {
		return -1, unix.EINVAL
	}
	if m.used(task) >= Slots {
		return -1, unix.ENOSPC
	}
	if e := refErrno(a); e != 0 {
		return -1, e
	}
	id := len(m.attrs)
	m.attrs = append(m.attrs, a)
	m.live = append(m.live, true)
	m.owner = append(m.owner, task)
	m.tasks[task] = append(m.tasks[task], id)
	return id, 0
}

func remove(ids []int, id int) []int {
	var out []int
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

func (m *refModel) unregister(id int) {
	m.live[id] = false
	for i := range m.tasks {
		m.tasks[i] = remove(m.tasks[i], id)
	}
}

// image returns the addresses and DR7 that the model expects for task.
func (m *refModel) image(task int) (addrs [Slots]uint64, dr7 DR7, ids [Slots]int) {
	ids = [Slots]int{-1, -1, -1, -1}
	slot := 0
	lenBits := map[uint64]DR7{1: 0, 2: 1, 4: 3, 8: 2}
	for _, id := range m.tasks[task] {
		a := m.attrs[id]
		if a.Disabled {
			continue
		}
		rw := map[Type]DR7{TypeX: 0, TypeW: 1, TypeRW: 3}[a.Type]
		ln := lenBits[a.Len]
		if a.Type == TypeX {
			ln = 0
		}
		addrs[slot] = a.Addr
		dr7 |= 2<<(2*slot) | (rw|ln<<2)<<(16+4*slot) | 1<<9
		ids[slot] = id
		slot++
	}
	return addrs, dr7, ids
}

func randomAttr(rng *rand.Rand) Attr {
	addrs := []uint64{0, 0x1000, 0x1001, 0x1002, 0x1004, 0x1008, 0x1010, 0x7ffffffff000 - 8, 0x7ffffffff000 - 1, 0x7ffffffff000, 0x7ffffffffff8, 0xffff800000000000, ^uint64(0)}
	lens := []uint64{0, 1, 2, 3, 4, 8, 16, 4096}
	types := []Type{TypeEmpty, TypeR, TypeW, TypeRW, TypeX, TypeX | TypeW, typeInvalid, 8}
	return Attr{
		Addr:     addrs[rng.Intn(len(addrs))],
		Len:      lens[rng.Intn(len(lens))],
		Type:     types[rng.Intn(len(types))],
		Disabled: rng.Intn(3) == 0,
	}
}

// TestRegistryMatchesModel drives a Registry and the reference model with
// the same random operations and compares every answer and every task's
// state after each step.
func TestRegistryMatchesModel(t *testing.T) {
	for seed := int64(1); seed <= 40; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			r := NewRegistry()
			m := &refModel{}
			var tasks []*Task
			var bps []*Breakpoint // indexed like m.attrs
			newTask := func() {
				tasks = append(tasks, r.NewTask())
				m.tasks = append(m.tasks, nil)
				m.released = append(m.released, false)
			}
			for i := 0; i < 4; i++ {
				newTask()
			}
			for step := 0; step < 600; step++ {
				var op string
				var gotErr, wantErr unix.Errno
				switch k := rng.Intn(20); {
				case k < 8: // register
					task := rng.Intn(len(tasks))
					a := randomAttr(rng)
					op = fmt.Sprintf("register(task %d, %v)", task, a)
					bp, err := r.Register(tasks[task], a, nil)
					gotErr = errnoOf(t, err)
					var id int
					id, wantErr = m.register(task, a)
					if err == nil && gotErr == wantErr {
						if id != len(bps) {
							t.Fatalf("model id %d, have %d events", id, len(bps))
						}
						bps = append(bps, bp)
					}
				case k < 12 && len(bps) > 0: // modify
					id := rng.Intn(len(bps))
					a := randomAttr(rng)
					op = fmt.Sprintf("modify(%d, %v)", id, a)
					gotErr = errnoOf(t, bps[id].Modify(a))
					switch {
					case !m.live[id] && m.released[m.owner[id]]:
						wantErr = unix.ESRCH // its task's exit flushed it
					case !m.live[id]:
						wantErr = unix.ENOENT
					default:
						if wantErr = refErrno(a); wantErr == 0 {
							m.attrs[id] = a
						}
					}
				case k < 15 && len(bps) > 0: // enable or disable
					id := rng.Intn(len(bps))
					dis := rng.Intn(2) == 0
					op = fmt.Sprintf("setDisabled(%d, %v)", id, dis)
					if dis {
						bps[id].Disable()
					} else {
						bps[id].Enable()
					}
					if m.live[id] {
						m.attrs[id].Disabled = dis
					}
				case k < 18 && len(bps) > 0: // unregister
					id := rng.Intn(len(bps))
					op = fmt.Sprintf("unregister(%d)", id)
					bps[id].Unregister()
					m.unregister(id)
				case k < 19: // a task exits
					task := rng.Intn(len(tasks))
					op = fmt.Sprintf("release(%d)", task)
					tasks[task].Release()
					for _, id := range m.tasks[task] {
						m.live[id] = false
					}
					m.tasks[task] = nil
					m.released[task] = true
				default:
					op = "newTask"
					newTask()
				}
				if gotErr != wantErr {
					t.Fatalf("step %d %s: got %v, want %v", step, op, gotErr, wantErr)
				}
				anyEnabled := false
				liveTasks := 0
				for i, task := range tasks {
					if m.released[i] {
						continue
					}
					liveTasks++
					addrs, dr7, ids := m.image(i)
					img := task.Image()
					if img.Addr != addrs || img.DR7 != dr7 {
						t.Fatalf("step %d %s: task %d image %#x %#x, want %#x %#x", step, op, i, img.Addr, uint64(img.DR7), addrs, uint64(dr7))
					}
					for s, id := range ids {
						if (id < 0) != (img.Breakpoint(s) == nil) || id >= 0 && img.Breakpoint(s) != bps[id] {
							t.Fatalf("step %d %s: task %d slot %d holds the wrong event", step, op, i, s)
						}
					}
					if got, want := task.SlotsInUse(), m.used(i); got != want {
						t.Fatalf("step %d %s: task %d uses %d slots, want %d", step, op, i, got, want)
					}
					if task.HasBreakpoints() != (dr7 != 0) {
						t.Fatalf("step %d %s: task %d HasBreakpoints %v", step, op, i, task.HasBreakpoints())
					}
					anyEnabled = anyEnabled || dr7 != 0
				}
				enabled := int64(0)
				for id, live := range m.live {
					if live && !m.attrs[id].Disabled {
						enabled++
					}
				}
				if r.Enabled() != enabled {
					t.Fatalf("step %d %s: %d enabled events, want %d", step, op, r.Enabled(), enabled)
				}
				if r.Active() != anyEnabled || r.Tasks() != liveTasks {
					t.Fatalf("step %d %s: Active %v tasks %d, want %v %d", step, op, r.Active(), r.Tasks(), anyEnabled, liveTasks)
				}
			}
		})
	}
}

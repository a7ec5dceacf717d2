// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package plugin

import (
	"bytes"
	"context"
	"reflect"
	"slices"
	"testing"

	"gvisor.dev/gvisor/pkg/sentry/kernel"
	"gvisor.dev/gvisor/pkg/state"

	"github.com/gvisor-hwbp/hwbp/sentry/perf"
)

// The plugin's checkpoint state is saved by hand-written state methods (the
// stateify generator is not part of gVisor's Go module). These tests fail
// when a field is added to a saved type, or to what it is converted from,
// and is not saved or not converted.

// notSaved lists the fields of the saved types that their StateFields leave
// out on purpose: embedded implementations without state, and state that
// is rebuilt at restore.
var notSaved = map[string][]string{
	"perfFD": {
		"FileDescriptionDefaultImpl", "DentryMetadataFileDescriptionImpl", "NoLockFD", // no state
		"queue", // the waiters register again after the restore
	},
}

// TestStateFieldsNameEveryField checks that each saved type's StateFields
// names each of its fields once, but those in notSaved.
func TestStateFieldsNameEveryField(t *testing.T) {
	for _, v := range []interface {
		StateTypeName() string
		StateFields() []string
	}{&checkpoint{}, &savedThread{}, &savedPerfEvent{}, &perfFD{}} {
		typ := reflect.TypeOf(v).Elem()
		var want []string
		for i := 0; i < typ.NumField(); i++ {
			if name := typ.Field(i).Name; !slices.Contains(notSaved[typ.Name()], name) {
				want = append(want, name)
			}
		}
		got := slices.Clone(v.StateFields())
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s.StateFields() = %v, want the fields %v (or list a field in notSaved)", typ.Name(), got, want)
		}
	}
}

// TestSavedTypesRoundTrip saves and loads each plain saved type with every
// field set, through gVisor's state package: a field that StateSave or
// StateLoad misses comes back zero.
func TestSavedTypesRoundTrip(t *testing.T) {
	child := filled[savedPerfEvent](t)
	ev := filled[savedPerfEvent](t)
	ev.Children = []savedPerfEvent{child}
	for _, tc := range []struct {
		in, out any
	}{
		{ptr(filled[savedThread](t)), new(savedThread)},
		{&ev, new(savedPerfEvent)},
	} {
		var buf bytes.Buffer
		if _, err := state.Save(context.Background(), &buf, tc.in); err != nil {
			t.Fatalf("saving %T: %v", tc.in, err)
		}
		if _, err := state.Load(context.Background(), &buf, tc.out); err != nil {
			t.Fatalf("loading %T: %v", tc.out, err)
		}
		if !reflect.DeepEqual(tc.in, tc.out) {
			t.Errorf("%T after a save and a load:\n got %+v\nwant %+v", tc.in, tc.out, tc.in)
		}
	}
}

// TestPerfEventStateConversion checks that savePerfEvent and eventState
// carry every field of perf.EventState, for an event and its copies.
func TestPerfEventStateConversion(t *testing.T) {
	s := filled[perf.EventState[*kernel.Task]](t)
	s.Children = []perf.EventState[*kernel.Task]{filled[perf.EventState[*kernel.Task]](t)}
	v := savePerfEvent(s)
	if got := v.eventState(); !reflect.DeepEqual(got, s) {
		t.Errorf("perf.EventState through savedPerfEvent:\n got %+v\nwant %+v", got, s)
	}
}

func ptr[T any](v T) *T { return &v }

// filled returns a T whose exported fields are all set to values other than
// their zero, but pointers to kernel objects (nil: the state package saves
// them by reference), slices of T's own type (the caller sets them) and
// perf.Attr (set from bytes).
func filled[T any](t *testing.T) T {
	var v T
	fill(t, reflect.ValueOf(&v).Elem(), 1)
	return v
}

func fill(t *testing.T, v reflect.Value, seed uint64) uint64 {
	switch {
	case v.Type() == reflect.TypeOf(perf.Attr{}):
		var raw [perf.AttrSize]byte
		for i := range raw {
			raw[i] = byte(seed) + byte(i)
		}
		v.Set(reflect.ValueOf(perf.AttrFromBytes(raw)))
		return seed + 1
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(seed))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(seed)
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			seed = fill(t, v.Index(i), seed)
		}
		return seed
	case reflect.Slice:
		if v.Type().Elem() == v.Type() || v.Type().Elem().Kind() == reflect.Struct {
			return seed // Children: set by the caller
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			seed = fill(t, s.Index(i), seed)
		}
		v.Set(s)
		return seed
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				seed = fill(t, v.Field(i), seed)
			}
		}
		return seed
	case reflect.Pointer:
		return seed // a kernel object: left nil
	default:
		t.Fatalf("fill: no value for a field of kind %v (%v)", v.Kind(), v.Type())
	}
	return seed + 1
}

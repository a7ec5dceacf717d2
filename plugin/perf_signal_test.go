// Copyright 2026 The hwbp Authors.
// SPDX-License-Identifier: Apache-2.0

package plugin

import (
	"testing"

	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/sentry/kernel/auth"

	"github.com/gvisor-hwbp/hwbp/sentry/perf"
)

// creds returns credentials with the given real, effective and saved user.
func creds(real, effective, saved auth.KUID) *auth.Credentials {
	c := auth.NewAnonymousCredentials()
	c.RealKUID, c.EffectiveKUID, c.SavedKUID = real, effective, saved
	return c
}

// TestSigioPerm checks Linux's sigio_perm (fs/fcntl.c): the owner's
// effective user is root, or the owner's effective or real user is the
// recipient's real or saved user (not its effective one).
func TestSigioPerm(t *testing.T) {
	for _, tc := range []struct {
		name      string
		owner, to *auth.Credentials
		want      bool
	}{
		{"root owner", creds(1000, 0, 1000), creds(2000, 2000, 2000), true},
		{"same user", creds(1000, 1000, 1000), creds(1000, 1000, 1000), true},
		{"owner euid is recipient's saved", creds(5, 2000, 5), creds(1, 1, 2000), true},
		{"owner ruid is recipient's real", creds(2000, 5, 5), creds(2000, 1, 1), true},
		{"only recipient's effective matches", creds(5, 6, 6), creds(1, 6, 1), false},
		{"strangers", creds(5, 5, 5), creds(6, 6, 6), false},
	} {
		if got := sigioPerm(tc.owner, tc.to); got != tc.want {
			t.Errorf("%s: sigioPerm = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSigSpecificCodes checks SIG_SPECIFIC_SICODES_MASK
// (include/linux/signal.h): the signals whose si_codes POLL_IN would be
// confused with.
func TestSigSpecificCodes(t *testing.T) {
	specific := map[linux.Signal]bool{
		linux.SIGILL: true, linux.SIGFPE: true, linux.SIGSEGV: true, linux.SIGBUS: true,
		linux.SIGTRAP: true, linux.SIGCHLD: true, linux.SIGPOLL: true, linux.SIGSYS: true,
	}
	for sig := linux.Signal(1); sig <= linux.SignalMaximum; sig++ {
		if got := sigSpecificCodes(sig); got != specific[sig] {
			t.Errorf("sigSpecificCodes(%v) = %v, want %v", sig, got, specific[sig])
		}
	}
}

// TestBandTable checks si_band of the two reasons a perf fd signals
// (band_table in fs/fcntl.c: POLL_IN is EPOLLIN|EPOLLRDNORM, POLL_HUP
// EPOLLHUP|EPOLLERR).
func TestBandTable(t *testing.T) {
	if got, want := bandTable[perf.PollIn], int64(0x41); got != want {
		t.Errorf("band of POLL_IN = %#x, want %#x", got, want)
	}
	if got, want := bandTable[perf.PollHUp], int64(0x18); got != want {
		t.Errorf("band of POLL_HUP = %#x, want %#x", got, want)
	}
}

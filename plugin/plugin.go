// Package plugin links hwbp into a runsc binary. A main package imports it
// for its side effects (see cmd/runsc); its init installs hwbp's hooks into
// gVisor's registries before runsc parses its flags.
//
// The same binary runs every runsc subcommand, so init must only register
// hooks: anything that belongs to the sentry happens when the sentry calls
// into a hook (for example when it constructs its platform in "runsc boot").
package plugin

import (
	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/sentry/platform"

	// Register gVisor's platforms first so that ours replace them.
	_ "gvisor.dev/gvisor/pkg/sentry/platform/platforms"
)

// Version identifies this build of the plugin in logs.
const Version = "0.1.0"

// StartMessage is logged by the sentry when it constructs a platform that
// the plugin wraps. End-to-end tests look for it in the boot log.
const StartMessage = "hwbp: plugin " + Version + " active"

// constructor wraps one of gVisor's platform constructors. Everything is
// delegated; New also announces the plugin in the sentry's log.
type constructor struct {
	platform.Constructor
	name string
}

// New implements platform.Constructor.New.
func (c constructor) New(opts platform.Options) (platform.Platform, error) {
	log.Infof("%s on platform %q", StartMessage, c.name)
	return c.Constructor.New(opts)
}

func init() {
	for _, name := range []string{"ptrace", "systrap"} {
		c, err := platform.Lookup(name)
		if err != nil {
			panic("hwbp: gVisor has no platform " + name + ": " + err.Error())
		}
		platform.Register(name, constructor{Constructor: c, name: name})
	}
}

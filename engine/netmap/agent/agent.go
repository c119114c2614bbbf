// Package agent owns the pure decisions of a network-map node agent, as
// Corda's node makes them: whether an advertised update is auto-accepted,
// what to do at the flag day, whether the node may start with the
// parameters it has, and which NodeInfos the additional-node-infos folder
// and the map contribute to the cache. Every function works on bytes and
// values the caller read; the agent's loop does the I/O.
package agent

import (
	"errors"
	"fmt"
	"slices"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/netmap"
)

// AutoAcceptableFields are the fields whose change a node accepts without
// its operator (Corda's @AutoAcceptable properties).
var AutoAcceptableFields = []string{
	netmap.FieldModifiedTime, netmap.FieldEpoch, netmap.FieldWhitelist, netmap.FieldPackageOwnership,
}

// Policy is the node's auto-accept configuration.
type Policy struct {
	// Disabled turns auto-acceptance off (Corda's
	// autoAcceptNetworkParameters = false).
	Disabled bool
	// Excluded are auto-acceptable fields whose change needs the operator.
	Excluded []string
}

// ErrUnknownField is wrapped by Policy.Validate for an exclusion that names
// no auto-acceptable field.
var ErrUnknownField = errors.New("not an auto-acceptable field")

// Validate checks that every exclusion is an auto-acceptable field.
func (p Policy) Validate() error {
	for _, f := range p.Excluded {
		if !slices.Contains(AutoAcceptableFields, f) {
			return engine.Wrap(engine.KindInvalid, "InvalidAutoAcceptExclusion", ErrUnknownField,
				"%q is not one of %v", f, AutoAcceptableFields)
		}
	}
	return nil
}

// CanAutoAccept reports whether the node accepts update on its own: only
// auto-acceptable fields changed and none of them is excluded. With the
// policy disabled nothing is auto-accepted.
func CanAutoAccept(current, update netmap.NetworkParameters, p Policy) bool {
	if p.Disabled {
		return false
	}
	for _, f := range netmap.ChangedFields(current, update) {
		if !slices.Contains(AutoAcceptableFields, f) || slices.Contains(p.Excluded, f) {
			return false
		}
	}
	return true
}

// hotLoadable are the fields a running node takes without a restart: the
// two that change at every update and the notaries (Corda's
// NetworkParametersHotloader).
var hotLoadable = []string{netmap.FieldEpoch, netmap.FieldModifiedTime, netmap.FieldNotaries}

// Action is what the agent does at the flag day.
type Action int

const (
	// HotLoad: take the new parameters in place and keep running.
	HotLoad Action = iota
	// Restart: exit 0; on restart the update file replaces network-parameters.
	Restart
	// Refuse: exit 1, the parameters were not accepted.
	Refuse
)

func (a Action) String() string {
	return [...]string{"hot-load", "restart", "refuse"}[a]
}

// Outcome is the flag-day decision, with the exit code and the message the
// agent prints.
type Outcome struct {
	Action   Action
	ExitCode int
	Message  string
}

// MsgNotAccepted is the reason a node that did not accept exits with.
const MsgNotAccepted = "parameters were not accepted before the deadline; delete network-parameters and restart"

// FlagDay decides what a node does when update comes into force: refuse
// (exit 1) if it did not accept, hot-load an accepted change of notaries
// only, restart (exit 0) after accepting anything else.
func FlagDay(current, update netmap.NetworkParameters, accepted bool) Outcome {
	if !accepted {
		return Outcome{Action: Refuse, ExitCode: 1, Message: MsgNotAccepted}
	}
	changed := netmap.ChangedFields(current, update)
	for _, f := range changed {
		if !slices.Contains(hotLoadable, f) {
			return Outcome{Action: Restart, ExitCode: 0,
				Message: fmt.Sprintf("network parameters changed (%v); restart to use them", changed)}
		}
	}
	return Outcome{Action: HotLoad, Message: "network parameters hot-loaded"}
}

// ErrStaleHash is wrapped by Accept for a hash that is not the pending one.
var ErrStaleHash = errors.New("not the pending update")

// Accept checks an operator's acceptance locally (gavel node accept): only
// the pending hash, as the service would answer OutdatedNetworkParameterHash.
func Accept(hash, pending string) error {
	if pending == "" || hash != pending {
		msg := "there is no pending update"
		if pending != "" {
			msg = "the pending update is " + pending
		}
		return engine.Wrap(engine.KindConflict, netmap.CodeOutdatedParametersHash, ErrStaleHash, "%s: %s", hash, msg)
	}
	return nil
}

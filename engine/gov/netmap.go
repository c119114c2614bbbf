package gov

import (
	"encoding/json"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/netmap"
)

// The network map's governed actions. The constitution votes on them, but
// their effect is the engine's (netmap), on tables no constitution can
// write: the parameters' hash and epoch must be exactly the ones nodes
// accept, whatever script is in force.
const (
	ActionSetNetworkParameters   = "set_network_parameters"
	ActionCancelParametersUpdate = "cancel_network_parameters_update"
)

type proposalActions struct {
	Actions []struct {
		Name string          `json:"name"`
		Args json.RawMessage `json:"args"`
	} `json:"actions"`
}

func parseActions(body string) proposalActions {
	var a proposalActions
	_ = json.Unmarshal([]byte(body), &a) // the constitution validated the shape
	return a
}

// netmap reports whether any action is the engine's (the limits are read
// only then: most proposals have none).
func (a proposalActions) netmap() bool {
	for _, x := range a.Actions {
		if x.Name == ActionSetNetworkParameters || x.Name == ActionCancelParametersUpdate {
			return true
		}
	}
	return false
}

// validateNetmapActions is the engine's validate step of a proposal's
// network-map actions, at the proposal's time: schema and Corda's rules,
// each error a sentence naming the field.
func validateNetmapActions(st engine.StateReader, now time.Time, body string) error {
	actions := parseActions(body)
	if !actions.netmap() {
		return nil
	}
	lim, err := netmap.LoadLimits(st)
	if err != nil {
		return err
	}
	for _, a := range actions.Actions {
		if a.Name != ActionSetNetworkParameters {
			continue
		}
		u, err := netmap.ParseSetParameters(a.Args, lim)
		if err == nil {
			err = u.Validate(st, now, lim)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// applyNetmapActions is the engine's apply of an accepted proposal's
// network-map actions, in order, each seeing the writes of the ones
// before.
func applyNetmapActions(st engine.StateReader, f engine.Facts, body string) (engine.WriteSet, error) {
	actions := parseActions(body)
	if !actions.netmap() {
		return nil, nil
	}
	lim, err := netmap.LoadLimits(st)
	if err != nil {
		return nil, err
	}
	view := &writeOverlay{base: st}
	for _, a := range actions.Actions {
		var ws engine.WriteSet
		switch a.Name {
		case ActionSetNetworkParameters:
			u, err := netmap.ParseSetParameters(a.Args, lim)
			if err != nil {
				return nil, err
			}
			if ws, _, err = u.Apply(view, f, lim); err != nil {
				return nil, err
			}
		case ActionCancelParametersUpdate:
			if ws, err = netmap.ApplyCancelUpdate(view); err != nil {
				return nil, err
			}
		default:
			continue
		}
		view.ws = append(view.ws, ws...)
	}
	return view.ws, nil
}

// writeOverlay reads writes made so far over a base state (Get only: the
// netmap apply steps read single records).
type writeOverlay struct {
	base engine.StateReader
	ws   engine.WriteSet
}

func (o *writeOverlay) Get(table, key string) ([]byte, bool, error) {
	for i := len(o.ws) - 1; i >= 0; i-- {
		if w := o.ws[i]; w.Table == table && w.Key == key {
			return w.Value, !w.Delete, nil
		}
	}
	return o.base.Get(table, key)
}

func (o *writeOverlay) Range(table string, fn func(string, []byte) bool) error {
	return o.base.Range(table, fn)
}

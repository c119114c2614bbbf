package constitution

import (
	"reflect"
	"strconv"
	"time"

	"github.com/dop251/goja"
	"github.com/gavelhq/gavel/engine"
)

// Env is what one call sees besides its arguments.
type Env struct {
	// Time is the entry's time: Date.now() and new Date() return it.
	Time time.Time
	// State is the governance state before the entry.
	State StateReader
	// Limits bounds the call; zero fields take DefaultLimits.
	Limits Limits
	// Log, if set, receives console output (at most Limits.MaxLogBytes).
	Log func(line string)

	fuelUsed *int64       // if set, receives the fuel the call used (nested calls)
	checking bool         // a CheckRepairable call: gavel.constitution.check only compiles
	observe  *Observation // if set, records what the call observed (VoteObserved)
}

// Vote is one member's ballot result, as resolve receives it.
type Vote struct {
	MemberID string
	Vote     bool
}

// ValidateResult is what validate returns.
type ValidateResult struct {
	Valid       bool
	Description string
}

// ProposalState is a proposal's state, with CCF's names and meaning.
type ProposalState string

// Proposal states. Resolve returns only Open, Accepted or Rejected; the
// others are set by the engine.
const (
	ProposalOpen      ProposalState = "Open"
	ProposalAccepted  ProposalState = "Accepted"
	ProposalRejected  ProposalState = "Rejected"
	ProposalWithdrawn ProposalState = "Withdrawn"
	ProposalFailed    ProposalState = "Failed"
	ProposalDropped   ProposalState = "Dropped"
)

func str(s string) func(*goja.Runtime) []goja.Value {
	return func(rt *goja.Runtime) []goja.Value { return []goja.Value{rt.ToValue(s)} }
}

// convert runs a result conversion (which may call script getters) and
// turns a throw into ScriptThrew.
func (sb *sandbox) convert(f func() error) error {
	var err error
	if ex := sb.rt.Try(func() { err = f() }); ex != nil {
		return sb.classify(ex)
	}
	return err
}

// Validate runs validate(proposal): the proposal is the raw JSON payload.
func (c *Constitution) Validate(env Env, proposalJSON string) (ValidateResult, error) {
	var out ValidateResult
	_, err := run(env, invocation{
		mod:   c.validate,
		entry: "validate",
		args:  str(proposalJSON),
		result: func(sb *sandbox, v goja.Value) error {
			return sb.convert(func() error {
				o, ok := v.(*goja.Object)
				if !ok {
					return badResult("validate must return {valid, description}, not %s", describe(v))
				}
				valid := o.Get("valid")
				if !isBool(valid) {
					return badResult("validate's result.valid must be a boolean, not %s", describe(valid))
				}
				out.Valid = valid.ToBoolean()
				desc := o.Get("description")
				switch {
				case desc == nil || goja.IsUndefined(desc):
				case goja.IsString(desc):
					out.Description = desc.String()
				default:
					return badResult("validate's result.description must be a string, not %s", describe(desc))
				}
				return nil
			})
		},
	})
	if err != nil {
		return ValidateResult{}, err
	}
	return out, nil
}

// Resolve runs resolve(proposal, proposerId, votes, proposalId) with votes
// as [{member_id, vote}], and checks it returns Open, Accepted or Rejected.
func (c *Constitution) Resolve(env Env, proposalJSON, proposerID string, votes []Vote, proposalID string) (ProposalState, error) {
	var out ProposalState
	_, err := run(env, invocation{
		mod:   c.resolve,
		entry: "resolve",
		args: func(rt *goja.Runtime) []goja.Value {
			list := make([]any, len(votes))
			for i, v := range votes {
				o := rt.NewObject()
				_ = o.Set("member_id", v.MemberID)
				_ = o.Set("vote", v.Vote)
				list[i] = o
			}
			return []goja.Value{rt.ToValue(proposalJSON), rt.ToValue(proposerID), rt.NewArray(list...), rt.ToValue(proposalID)}
		},
		result: func(sb *sandbox, v goja.Value) error {
			if goja.IsString(v) {
				switch s := ProposalState(v.String()); s {
				case ProposalOpen, ProposalAccepted, ProposalRejected:
					out = s
					return nil
				}
			}
			return badResult("resolve must return \"Open\", \"Accepted\" or \"Rejected\", not %s", describe(v))
		},
	})
	if err != nil {
		return "", err
	}
	return out, nil
}

// Apply runs apply(proposal, proposalId) and returns the writes it made
// through gavel.kv, canonical. Nothing else it does has any effect.
func (c *Constitution) Apply(env Env, proposalJSON, proposalID string) (engine.WriteSet, error) {
	ov, err := run(env, invocation{
		mod:   c.apply,
		entry: "apply",
		apply: true,
		args: func(rt *goja.Runtime) []goja.Value {
			return []goja.Value{rt.ToValue(proposalJSON), rt.ToValue(proposalID)}
		},
		result: func(*sandbox, goja.Value) error { return nil },
	})
	if err != nil {
		return nil, err
	}
	return ov.writeSet(), nil
}

// Vote runs the ballot's vote(proposal, proposerId); it must return a
// boolean.
func (b *Ballot) Vote(env Env, proposalJSON, proposerID string) (bool, error) {
	var out bool
	_, err := run(env, invocation{
		mod:   b.mod,
		entry: "vote",
		args: func(rt *goja.Runtime) []goja.Value {
			return []goja.Value{rt.ToValue(proposalJSON), rt.ToValue(proposerID)}
		},
		result: func(sb *sandbox, v goja.Value) error {
			if !isBool(v) {
				return badResult("vote must return a boolean, not %s", describe(v))
			}
			out = v.ToBoolean()
			return nil
		},
	})
	return out, err
}

// VoteObserved is Vote that also returns what the ballot observed of its
// environment (nested calls included), so a caller can tell when the
// outcome cannot have changed and reuse it (Observation.Unchanged).
func (b *Ballot) VoteObserved(env Env, proposalJSON, proposerID string) (bool, *Observation, error) {
	obs := newObservation()
	env.observe = obs
	if env.State != nil {
		env.State = observingState{st: env.State, obs: obs}
	}
	v, err := b.Vote(env, proposalJSON, proposerID)
	return v, obs, err
}

var boolType = reflect.TypeOf(true)

// isBool reports whether v is a primitive boolean (not a Boolean object),
// without running any script code.
func isBool(v goja.Value) bool {
	if v == nil || isObject(v) {
		return false
	}
	return v.ExportType() == boolType
}

// describe names a result's type for an error message without running any
// script code.
func describe(v goja.Value) string {
	switch {
	case v == nil || goja.IsUndefined(v):
		return "undefined"
	case goja.IsNull(v):
		return "null"
	case goja.IsString(v):
		s := v.String()
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return "the string " + strconv.Quote(s)
	case isBool(v):
		return "a boolean"
	case goja.IsNumber(v):
		return "a number"
	}
	if o, ok := v.(*goja.Object); ok {
		if _, ok := goja.AssertFunction(o); ok {
			return "a function"
		}
		return "an object"
	}
	return "a " + v.ExportType().String()
}

package constitution

import (
	"crypto/sha256"
	"sync/atomic"

	"github.com/dop251/goja"

	"github.com/gavelhq/gavel/engine"
)

// CodeInvalidJoinPolicy marks a join policy that does not compile or does
// not export apply (CCF's "invalid policy module").
const CodeInvalidJoinPolicy = "InvalidJoinPolicy"

// fileJoinPolicy is the module's name in the bundle: the entry imports apply from it.
const fileJoinPolicy = FileApply

// JoinPolicy is a compiled node join policy: an ES module exporting
// apply(transparent_statements), as CCF's set_node_join_policy takes it.
type JoinPolicy struct {
	hash [32]byte
	mod  *module
}

// Hash is the SHA-256 of the policy source.
func (p *JoinPolicy) Hash() [32]byte { return p.hash }

// Join policies are compiled once per source: every proposal of one is
// checked by compiling it (esbuild costs most of a proposal's execution),
// and every join compiles the policy in force. The outcome, a policy or
// the compiler's refusal, is a pure function of the source, so a kept
// one is the recomputed one. A compiled program is ~20 times its source
// (256 kept programs of 16 KiB sources held 84 MiB), so only sources up
// to 4 KiB are kept (256 of those held 27 MiB), whatever members propose; CCF's
// join policies are a few hundred bytes. Larger ones compile every time.
const (
	joinPolicyCacheSize     = 256
	joinPolicyCacheMaxBytes = 4 << 10
)

type joinCompiled struct {
	policy *JoinPolicy
	err    error
}

var (
	joinPolicies     = newLRU[[32]byte, joinCompiled](joinPolicyCacheSize)
	joinPolicyOff    atomic.Bool
	joinPolicyReused atomic.Int64
)

// SetJoinPolicyCache turns the kept join policy outcomes on or off and
// empties them, as in a fresh process: tests compare runs with and
// without. Not safe while compiling.
func SetJoinPolicyCache(on bool) {
	joinPolicyOff.Store(!on)
	joinPolicies = newLRU[[32]byte, joinCompiled](joinPolicyCacheSize)
}

// JoinPoliciesReused is how many join policy compilations were answered
// from kept outcomes since the process started.
func JoinPoliciesReused() int64 { return joinPolicyReused.Load() }

// CompileJoinPolicy compiles a join policy; a syntax error, an empty
// script or a missing apply is CCF's "invalid policy module".
func CompileJoinPolicy(src string) (*JoinPolicy, error) {
	if src == "" {
		return nil, engine.Errorf(engine.KindInvalid, CodeInvalidJoinPolicy, "invalid policy module: the policy is empty")
	}
	h := sha256.Sum256([]byte(src))
	off := joinPolicyOff.Load()
	if c, ok := joinPolicies.get(h); ok && !off {
		joinPolicyReused.Add(1)
		return c.policy, c.err
	}
	c := compileJoinPolicy(h, src)
	if len(src) <= joinPolicyCacheMaxBytes && !off {
		c = joinPolicies.add(h, c)
	}
	return c.policy, c.err
}

func compileJoinPolicy(h [32]byte, src string) joinCompiled {
	out, err := bundle(map[string]string{fileJoinPolicy: src}, []string{"apply"}, false)
	if err != nil {
		return joinCompiled{err: engine.Wrap(engine.KindInvalid, CodeInvalidJoinPolicy, err, "invalid policy module")}
	}
	mod, err := compileModule("gavel:join_policy", out)
	if err != nil {
		return joinCompiled{err: engine.Wrap(engine.KindInvalid, CodeInvalidJoinPolicy, err, "invalid policy module")}
	}
	return joinCompiled{policy: &JoinPolicy{hash: h, mod: mod}}
}

// Judge runs apply(transparent_statements) with inputJSON (a JSON array,
// joinproof.PolicyInput) parsed into script values. It returns ("", nil)
// when the policy returns true, (reason, nil) when it returns a string,
// and an error for anything else: another value ("unexpected return
// value"), a throw (ScriptThrew, naming the message) or a budget failure.
func (p *JoinPolicy) Judge(env Env, inputJSON string) (reason string, accepted bool, err error) {
	_, err = run(env, invocation{
		mod:        p.mod,
		entry:      "apply",
		joinPolicy: true,
		args: func(rt *goja.Runtime) []goja.Value {
			// The sandbox's own JSON.parse, under the call's limits.
			parse, ok := goja.AssertFunction(rt.Get("JSON").ToObject(rt).Get("parse"))
			if !ok {
				panic(engine.Errorf(engine.KindInternal, CodeScriptInternalError, "JSON.parse is not a function"))
			}
			v, err := parse(goja.Undefined(), rt.ToValue(inputJSON))
			if err != nil {
				panic(err)
			}
			return []goja.Value{v}
		},
		result: func(sb *sandbox, v goja.Value) error {
			switch {
			case isBool(v) && v.ToBoolean():
				accepted = true
				return nil
			case goja.IsString(v):
				reason = v.String()
				return nil
			}
			return badResult("unexpected return value from the join policy: %s", describe(v))
		},
	})
	return reason, accepted, err
}

// checkJoinPolicy is gavel.constitution.checkJoinPolicy(source): null if
// source compiles as a join policy, else the compiler's message, so that
// set_node_join_policy refuses a broken policy when it is proposed.
func (sb *sandbox) checkJoinPolicy(c goja.FunctionCall) goja.Value {
	src := sb.stringArg(c, 0, "gavel.constitution.checkJoinPolicy", "source")
	var err error
	sb.inHost(func() { _, err = CompileJoinPolicy(src) })
	if err != nil {
		return sb.rt.ToValue(err.Error())
	}
	return goja.Null()
}

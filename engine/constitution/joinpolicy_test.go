package constitution

import (
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
)

func TestJoinPolicyResults(t *testing.T) {
	env := Env{Time: time.Unix(1700000000, 0), State: MemState{}}
	input := `[{"phdr":{"alg":-7,"x5chain":["pem"],"cwt":{"iss":"did:x509:x","svn":3}},"receipts":[{"alg":-7,"vds":2,"cwt":{},"ccf":{},"leaves":[]}]}]`
	for _, tc := range []struct {
		name, src, reason string
		accepted          bool
		code              string
	}{
		{"accept", `export function apply(ts) { return true; }`, "", true, ""},
		{"reject", `export function apply(ts) { return "svn " + ts[0].phdr.cwt.svn + " too low"; }`, "svn 3 too low", false, ""},
		{"undefined optional", `export function apply(ts) { return ts[0].phdr.cwt.sub === undefined ? true : "sub"; }`, "", true, ""},
		{"vds", `export function apply(ts) { return ts[0].receipts[0].vds === 2 || "vds"; }`, "", true, ""},
		{"number", `export function apply(ts) { return 1; }`, "", false, CodeScriptBadResult},
		{"false", `export function apply(ts) { return false; }`, "", false, CodeScriptBadResult},
		{"throw", `export function apply(ts) { throw new Error("boom"); }`, "", false, CodeScriptThrew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := CompileJoinPolicy(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			reason, ok, err := p.Judge(env, input)
			if tc.code != "" {
				if err == nil || engine.AsError(err).Code != tc.code {
					t.Fatalf("got %q %v %v, want error %s", reason, ok, err, tc.code)
				}
				return
			}
			if err != nil || ok != tc.accepted || reason != tc.reason {
				t.Fatalf("got %q %v %v", reason, ok, err)
			}
		})
	}
}

func TestJoinPolicyInvalidModule(t *testing.T) {
	for _, src := range []string{"", "export function apply( {", "export function other() { return true; }"} {
		if _, err := CompileJoinPolicy(src); err == nil || engine.AsError(err).Code != CodeInvalidJoinPolicy {
			t.Errorf("%q: %v", src, err)
		}
	}
}

// TestJoinPolicyKept: a source compiles once while kept, and the kept
// outcome, a policy or a refusal, is the one a fresh compilation gives.
func TestJoinPolicyKept(t *testing.T) {
	defer SetJoinPolicyCache(true)
	for _, src := range []string{`export function apply() { return true; } // kept`, "export function apply( { // kept"} {
		SetJoinPolicyCache(false)
		fresh, freshErr := CompileJoinPolicy(src)
		SetJoinPolicyCache(true)
		reused := JoinPoliciesReused()
		first, firstErr := CompileJoinPolicy(src)
		again, againErr := CompileJoinPolicy(src)
		if JoinPoliciesReused() != reused+1 || again != first {
			t.Fatalf("%q: compiled again (reused %d → %d)", src, reused, JoinPoliciesReused())
		}
		if (freshErr == nil) != (againErr == nil) || (freshErr != nil && freshErr.Error() != againErr.Error()) || firstErr != againErr {
			t.Fatalf("%q: fresh %v, kept %v", src, freshErr, againErr)
		}
		if freshErr == nil && (fresh.Hash() != again.Hash() || fresh == again) {
			t.Fatalf("%q: the cache was off, yet the fresh compilation is the kept one", src)
		}
	}
}

package policies_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/joinproof"
	"github.com/gavelhq/gavel/scripts/policies"
)

func input(sub string, svn *int64, vds int64) string {
	ts := joinproof.TransparentStatement{
		Phdr: joinproof.ProtectedHeader{Alg: -7, X5Chain: []string{"-----BEGIN CERTIFICATE-----"},
			CWT: joinproof.CWT{Iss: "did:x509:0:sha256:abc::eku:1.3.6.1.5.5.7.3.3", Sub: sub, Svn: svn}},
		Receipts: []joinproof.Receipt{{Alg: -35, Vds: vds, Leaves: []joinproof.Leaf{{ClaimsDigest: "00"}}}},
	}
	b, _ := json.Marshal([]joinproof.TransparentStatement{ts})
	return string(b)
}

func TestExamplePolicies(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name, policy, input, reason string
	}{
		{"vds2 accepts", policies.VDS2, input("x", nil, 2), ""},
		{"vds2 refuses CCF's documented 1", policies.VDS2, input("x", nil, 1), "Unexpected VDS: 1"},
		{"min_svn accepts 2", policies.MinSVN, input("gavel/code", n(2), 2), ""},
		{"min_svn refuses 1", policies.MinSVN, input("gavel/code", n(1), 2), "SVN too low: 1"},
		{"min_svn wants an svn", policies.MinSVN, input("gavel/code", nil, 2), "No SVN"},
		{"min_svn wants the feed", policies.MinSVN, input("other", n(9), 2), "Invalid subject: other"},
		{"min_svn wants vds 2", policies.MinSVN, input("gavel/code", n(9), 1), "Unexpected VDS: 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := constitution.CompileJoinPolicy(tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			reason, ok, err := p.Judge(constitution.Env{Time: time.Unix(1700000000, 0), State: constitution.MemState{}}, tc.input)
			if err != nil || ok != (tc.reason == "") || reason != tc.reason {
				t.Fatalf("got %q %v %v, want %q", reason, ok, err, tc.reason)
			}
		})
	}
}

package joinproof_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/attest"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/joinproof"
)

// statement is a code publisher's signed statement that hostData is code
// version B, with svn 101.
func statement(t *testing.T, iss interface {
	Sign(string, string, []byte, time.Time, ...cose.SignOption) ([]byte, error)
}, payload []byte, at time.Time) []byte {
	t.Helper()
	st, err := iss.Sign("gavel.code", "application/octet-stream", payload, at, cose.WithClaim("svn", int64(101)))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestValidate(t *testing.T) {
	svc, past := newService(t), newService(t)
	iss := newIssuer(t)
	st := statement(t, iss, hostData[:], iat)
	ts := embed(t, st, receiptFor(t, svc, st, receiptOpts{}), receiptFor(t, past, st, receiptOpts{}))
	v, err := joinproof.Validate(ts, hostData[:], keysOf(t, svc, past), now)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if len(v.Receipts) != 2 || v.Statement.Subject != "gavel.code" {
		t.Fatalf("validated %+v", v)
	}
	in := v.Input
	if in.Phdr.Alg != int64(cose.ES256) || in.Phdr.Cty != "application/octet-stream" || len(in.Phdr.X5Chain) != len(iss.Chain()) ||
		!strings.HasPrefix(in.Phdr.X5Chain[0], "-----BEGIN CERTIFICATE-----\n") ||
		in.Phdr.CWT.Iss != iss.DID || in.Phdr.CWT.Sub != "gavel.code" || *in.Phdr.CWT.Iat != iat.Unix() || *in.Phdr.CWT.Svn != 101 {
		t.Fatalf("phdr input %+v", in.Phdr)
	}
	r := in.Receipts[0]
	if r.Alg != int64(cose.ES384) || r.Vds != 2 || r.Kid != string(svc.KeyID()) || r.CCF.TxID != "2.2" ||
		r.CWT.Iss != "gavel.test" || r.CWT.Sub != "ledger.signature" || *r.CWT.Iat != now.Unix() || len(r.Leaves) != 1 {
		t.Fatalf("receipt input %+v", r)
	}
	if l := r.Leaves[0]; l.ClaimsDigest != hexDigest(v.ClaimsDigest) || !strings.HasPrefix(l.CommitEvidence, "ce:2.1:") || len(l.WriteSetDigest) != 64 {
		t.Fatalf("leaf input %+v", l)
	}
	// The policy input is the array of CCF's documentation.
	b, err := json.Marshal(joinproof.PolicyInput(v))
	if err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := json.Unmarshal(b, &back); err != nil || len(back) != 1 {
		t.Fatalf("input JSON %s: %v", b, err)
	}
	if _, ok := back[0]["phdr"].(map[string]any)["x5chain"].([]any); !ok {
		t.Fatalf("input JSON %s", b)
	}
}

// TestOptionalFieldsAbsent: a statement without content type, iat or svn,
// and a receipt without iss and sub, give an input without those keys
// (undefined in the policy), not zero values.
func TestOptionalFieldsAbsent(t *testing.T) {
	svc := newService(t)
	iss := newIssuer(t)
	st, err := iss.Sign("gavel.code", "", hostData[:], time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	cd, _ := cose.ClaimsDigest(st)
	ts := embed(t, st, receiptFor(t, svc, st, receiptOpts{claims: &cd}))
	v, err := joinproof.Validate(ts, hostData[:], keysOf(t, svc), now)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	b, err := json.Marshal(v.Input.Phdr)
	if err != nil {
		t.Fatal(err)
	}
	var phdr map[string]any
	if err := json.Unmarshal(b, &phdr); err != nil {
		t.Fatal(err)
	}
	if _, ok := phdr["cty"]; ok {
		t.Errorf("cty present: %s", b)
	}
	cwt := phdr["cwt"].(map[string]any)
	for _, k := range []string{"iat", "svn"} {
		if _, ok := cwt[k]; ok {
			t.Errorf("%s present: %s", k, b)
		}
	}
}

// TestValidateRefusals: one failing statement per structural check, each
// refused with its own reason as a 401 InvalidQuote.
func TestValidateRefusals(t *testing.T) {
	svc, other := newService(t), newService(t)
	iss, otherIss := newIssuer(t), newIssuer(t)
	keys := keysOf(t, svc)
	good := func(st []byte) []byte { return embed(t, st, receiptFor(t, svc, st, receiptOpts{})) }
	claims := func(did string) map[any]any {
		return map[any]any{int64(cose.ClaimIssuer): did, int64(cose.ClaimSubject): "gavel.code", int64(cose.ClaimIssuedAt): iat.Unix()}
	}
	wrong := engine.Digest{1}
	bare := statement(t, iss, hostData[:], iat)
	cases := []struct {
		name string
		ts   func() []byte
		want error
	}{
		{"not COSE", func() []byte { return []byte("not a statement") }, joinproof.ErrMalformed},
		{"empty x5chain", func() []byte {
			return good(signHeader(t, iss.LeafKey, map[any]any{cose.LabelAlg: int64(cose.ES256), cose.LabelCWTClaims: claims(iss.DID), cose.LabelX5Chain: [][]byte{}}, hostData[:]))
		}, joinproof.ErrNoX5Chain},
		{"no x5chain", func() []byte {
			return good(signHeader(t, iss.LeafKey, map[any]any{cose.LabelAlg: int64(cose.ES256), cose.LabelCWTClaims: claims(iss.DID)}, hostData[:]))
		}, joinproof.ErrNoX5Chain},
		{"empty issuer", func() []byte {
			return good(signHeader(t, iss.LeafKey, map[any]any{cose.LabelAlg: int64(cose.ES256), cose.LabelCWTClaims: claims(""), cose.LabelX5Chain: ders(iss.Chain())}, hostData[:]))
		}, joinproof.ErrNoIssuer},
		{"svn not an integer", func() []byte {
			st, err := iss.Sign("gavel.code", "", hostData[:], iat, cose.WithClaim("svn", "101"))
			if err != nil {
				t.Fatal(err)
			}
			return good(st)
		}, joinproof.ErrMalformed},
		{"iat before the chain's validity", func() []byte {
			return good(statement(t, iss, hostData[:], iss.Chain()[0].NotBefore.Add(-time.Minute)))
		}, joinproof.ErrIATOutsideChain},
		{"iat after the chain's validity", func() []byte {
			return good(statement(t, iss, hostData[:], iss.Chain()[0].NotAfter.Add(time.Minute)))
		}, joinproof.ErrIATOutsideChain},
		{"issuer not matching the chain", func() []byte {
			st, err := cose.SignStatement(iss.LeafKey, iss.Chain(), otherIss.DID, "gavel.code", "", hostData[:], iat)
			if err != nil {
				t.Fatal(err)
			}
			return good(st)
		}, joinproof.ErrIssuer},
		{"bad statement signature", func() []byte {
			m, err := cose.DecodeSign1(bare)
			if err != nil {
				t.Fatal(err)
			}
			m.Signature = append([]byte(nil), m.Signature...)
			m.Signature[0] ^= 1
			st, err := m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			return good(st)
		}, joinproof.ErrSignature},
		{"payload not 32 bytes", func() []byte { return good(statement(t, iss, append(hostData[:], 0), iat)) }, joinproof.ErrPayloadSize},
		{"payload not the host data", func() []byte {
			other := hostData
			other[31] ^= 1
			return good(statement(t, iss, other[:], iat))
		}, joinproof.ErrPayloadMismatch},
		{"no receipts", func() []byte { return bare }, joinproof.ErrNoReceipts},
		{"empty receipts header", func() []byte { return embed(t, bare) }, joinproof.ErrNoReceipts},
		{"wrong vds", func() []byte { return embed(t, bare, receiptFor(t, svc, bare, receiptOpts{vds: 1})) }, joinproof.ErrVDS},
		{"unbound claims digest", func() []byte { return embed(t, bare, receiptFor(t, svc, bare, receiptOpts{claims: &wrong})) }, joinproof.ErrClaimsDigest},
		{"receipt by another service", func() []byte { return embed(t, bare, receiptFor(t, other, bare, receiptOpts{})) }, joinproof.ErrReceiptIssuer},
		{"tampered proof", func() []byte { return embed(t, bare, receiptFor(t, svc, bare, receiptOpts{tamper: true})) }, joinproof.ErrReceiptProof},
		{"second receipt bad", func() []byte {
			return embed(t, bare, receiptFor(t, svc, bare, receiptOpts{}), receiptFor(t, svc, bare, receiptOpts{tamper: true}))
		}, joinproof.ErrReceiptProof},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := joinproof.Validate(tc.ts(), hostData[:], keys, now)
			if v != nil || !errors.Is(err, tc.want) {
				t.Fatalf("Validate = %v, %v; want %v", v, err, tc.want)
			}
			if e := engine.AsError(err); e.Code != attest.CodeInvalidQuote || e.Kind != engine.KindUnauthorized {
				t.Fatalf("%v is not a 401 InvalidQuote", err)
			}
		})
	}
}

func hexDigest(d engine.Digest) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 64)
	for i, x := range d {
		b[2*i], b[2*i+1] = digits[x>>4], digits[x&0xf]
	}
	return string(b)
}

// BenchmarkValidate is one join's transparent statement check.
func BenchmarkValidate(b *testing.B) {
	svc := newService(b)
	iss := newIssuer(b)
	st, err := iss.Sign("gavel.code", "", hostData[:], iat)
	if err != nil {
		b.Fatal(err)
	}
	ts := embed(b, st, receiptFor(b, svc, st, receiptOpts{}))
	keys := keysOf(b, svc)
	for b.Loop() {
		if _, err := joinproof.Validate(ts, hostData[:], keys, now); err != nil {
			b.Fatal(err)
		}
	}
}

package govreq

import (
	"crypto/ed25519"
	"errors"
	"reflect"
	"testing"

	"github.com/gavelhq/gavel/engine"
)

// mustBeTyped fails unless err is nil or a *engine.Error with a code.
func mustBeTyped(t *testing.T, err error) {
	t.Helper()
	var e *engine.Error
	if err != nil && (!errors.As(err, &e) || e.Code == "") {
		t.Fatalf("untyped error: %v", err)
	}
}

// FuzzParse: Parse never panics, answers with typed errors, and whatever
// it accepts re-parses to the same request with well-formed fields.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := Parse(raw, 1<<16)
		mustBeTyped(t, err)
		if err != nil {
			return
		}
		again, err := Parse(r.Raw, 1<<16)
		if err != nil {
			t.Fatalf("accepted request does not re-parse: %v", err)
		}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("re-parse differs:\n%+v\n%+v", r, again)
		}
		if !isLowerHex64([]byte(r.KeyID)) || r.CreatedAt < 0 || !r.Type.supported() || !r.Alg.Supported() ||
			r.Payload == nil || (r.ProposalID != "") != r.Type.NeedsProposalID() {
			t.Fatalf("accepted a malformed request: %+v", r)
		}
		mustBeTyped(t, r.Verify(testMember(t, r.Alg).Cert))
	})
}

// FuzzVerifySign1: VerifySign1 never panics and answers with typed errors,
// whatever the key type.
func FuzzVerifySign1(f *testing.F) {
	edKey := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public()
	f.Fuzz(func(t *testing.T, raw []byte) {
		mustBeTyped(t, VerifySign1(raw, edKey, nil))
		mustBeTyped(t, VerifySign1(raw, testMember(t, ES256).Cert.PublicKey, []byte("aad")))
	})
}

// FuzzLoadMember: LoadMember never panics, answers with typed errors, and a
// member it loads can sign a request that verifies.
func FuzzLoadMember(f *testing.F) {
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		m, err := LoadMember(certPEM, keyPEM)
		mustBeTyped(t, err)
		if err != nil {
			return
		}
		raw, err := m.Sign(MsgProposal, "", testTime, []byte("{}"))
		if err != nil {
			t.Fatalf("loaded member cannot sign: %v", err)
		}
		r, err := Parse(raw, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Verify(m.Cert); err != nil {
			t.Fatal(err)
		}
	})
}

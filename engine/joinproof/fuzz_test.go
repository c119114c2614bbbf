package joinproof_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/attest"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/joinproof"
	"github.com/gavelhq/gavel/engine/receipt"
)

var reasons = []error{
	joinproof.ErrMalformed, joinproof.ErrNoX5Chain, joinproof.ErrNoIssuer, joinproof.ErrIATOutsideChain,
	joinproof.ErrIssuer, joinproof.ErrSignature, joinproof.ErrPayloadSize, joinproof.ErrPayloadMismatch,
	joinproof.ErrNoReceipts, joinproof.ErrReceiptMalformed, joinproof.ErrVDS, joinproof.ErrClaimsDigest,
	joinproof.ErrReceiptIssuer, joinproof.ErrReceiptProof,
}

// FuzzValidate: any statement bytes are validated or refused with a reason;
// a validated statement's receipts all commit to its claims digest, and its
// policy input encodes. The host data is the payload when the statement
// parses, so that fuzzing reaches the receipts.
func FuzzValidate(f *testing.F) {
	svc := fixedService(f)
	iss := newIssuer(f)
	st, err := iss.Sign("gavel.code", "", hostData[:], iat, cose.WithClaim("svn", int64(3)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(embed(f, st, receiptFor(f, svc, st, receiptOpts{})))
	f.Add(st)
	ts, azure := loadField(f)
	f.Add(ts)
	keys, azureKeys := keysOf(f, svc), azure
	f.Fuzz(func(t *testing.T, raw []byte) {
		host := hostData[:]
		if st, err := cose.ParseStatement(raw); err == nil {
			host = st.Payload
		}
		for _, ks := range []receipt.KeySet{keys, azureKeys} {
			v, err := joinproof.Validate(raw, host, ks, fieldNow)
			if err != nil {
				if e := engine.AsError(err); e.Code != attest.CodeInvalidQuote || e.Kind != engine.KindUnauthorized {
					t.Fatalf("%v is not a 401 InvalidQuote", err)
				}
				known := false
				for _, r := range reasons {
					known = known || errors.Is(err, r)
				}
				if !known {
					t.Fatalf("%v carries no known reason", err)
				}
				continue
			}
			for _, r := range v.Receipts {
				if r.Leaf.ClaimsDigest != v.ClaimsDigest {
					t.Fatal("a validated receipt commits to another statement")
				}
			}
			if _, err := json.Marshal(joinproof.PolicyInput(v)); err != nil {
				t.Fatal(err)
			}
		}
	})
}

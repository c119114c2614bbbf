package cose

import (
	"strings"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/didx509"
)

// VerifyStatement checks a parsed statement as CCF does: the did:x509 issuer
// is resolved against the x5chain at the statement's iat, or at now when it
// has none, which yields the leaf key; then the signature is verified with
// that key, whose type must fit alg. Errors: InvalidIssuer, InvalidSignature.
func VerifyStatement(st *Statement, now time.Time) error {
	if !strings.HasPrefix(st.Issuer, "did:x509:") {
		return engine.Errorf(engine.KindInvalid, CodeInvalidIssuer, "issuer %q is not a did:x509", truncate(st.Issuer))
	}
	at := now
	if !st.IssuedAt.IsZero() {
		at = st.IssuedAt
	}
	key, err := didx509.Resolve(st.Issuer, st.Chain, at)
	if err != nil {
		return err
	}
	return VerifySignature(st.Alg, key, st.Protected, st.Payload, st.Signature)
}

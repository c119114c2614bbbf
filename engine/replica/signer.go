package replica

import (
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/receipt"
)

// Signature CWT claims: who signs (the service) and what (its ledger).
const (
	signatureIssuer  = "gavel"
	signatureSubject = "ledger.signature"
)

// rootSigner signs Merkle roots with the service identity.
type rootSigner struct{ s *receipt.Signer }

func newRootSigner(id *Identity) (rootSigner, error) {
	s, err := receipt.NewSigner(id.Key, id.Cert)
	return rootSigner{s}, err
}

func (r rootSigner) SignRoot(root engine.Digest, tx engine.TxID, iat time.Time) ([]byte, error) {
	return r.s.SignRoot(root, tx, iat, signatureIssuer, signatureSubject)
}

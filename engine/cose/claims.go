package cose

import (
	"crypto/sha256"

	"github.com/gavelhq/gavel/engine"
)

// ClaimsDigest is the claims_digest a CCF receipt commits to for a statement:
// SHA-256 of the tagged COSE_Sign1 with an empty unprotected header (so that
// receipts added later to header 394 do not change it). The other three items
// are kept byte for byte.
func ClaimsDigest(raw []byte) (engine.Digest, error) {
	m, err := DecodeSign1(raw)
	if err != nil {
		return engine.Digest{}, engine.Wrap(engine.KindInvalid, CodeInvalidStatement, err, "not a COSE_Sign1 statement")
	}
	m.Unprotected = nil
	b, err := m.Encode()
	if err != nil {
		return engine.Digest{}, err
	}
	return sha256.Sum256(b), nil
}

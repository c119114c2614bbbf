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
	return claimsDigest(m.Protected, m.Payload, m.Signature), nil
}

// ClaimsDigest is the statement's claims digest (the function
// ClaimsDigest), hashed from the parts the parse holds: no second decode.
func (st *Statement) ClaimsDigest() engine.Digest {
	return claimsDigest(st.Protected, st.Payload, st.Signature)
}

// claimsDigest hashes the encoding of a COSE_Sign1 with an empty
// unprotected header without building it: DecodeSign1 takes only
// shortest-form lengths, so these heads are the signed message's own.
func claimsDigest(protected, payload, signature []byte) engine.Digest {
	h := sha256.New()
	var buf [24]byte
	h.Write(appendHead(append(buf[:0], 0xd2, 0x84), majorBytes, uint64(len(protected))))
	h.Write(protected)
	head := append(buf[:0], 0xa0) // the empty unprotected header
	if payload == nil {
		head = append(head, 0xf6)
	} else {
		head = appendHead(head, majorBytes, uint64(len(payload)))
	}
	h.Write(head)
	h.Write(payload)
	h.Write(appendHead(buf[:0], majorBytes, uint64(len(signature))))
	h.Write(signature)
	var d engine.Digest
	h.Sum(d[:0])
	return d
}

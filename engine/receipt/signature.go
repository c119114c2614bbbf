package receipt

import (
	"bytes"
	"crypto"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
)

// VerifySignature checks a signature entry's COSE_Sign1 (detached payload)
// over root with the service key, and returns the transaction it names in
// "ccf.v1". Auditors use it on every signature entry during replay.
func VerifySignature(sig []byte, root engine.Digest, key crypto.PublicKey) (engine.TxID, error) {
	m, err := cose.DecodeSign1(sig)
	if err != nil {
		return engine.TxID{}, engine.Wrap(engine.KindInvalid, CodeInvalidReceipt, err, "signature is not a COSE_Sign1")
	}
	if m.Payload != nil {
		return engine.TxID{}, invalidReceipt("signature payload must be detached (the Merkle root)")
	}
	phdr, err := m.ProtectedHeader()
	if err != nil {
		return engine.TxID{}, engine.Wrap(engine.KindInvalid, CodeInvalidReceipt, err, "protected header")
	}
	r := &Receipt{Protected: m.Protected, Signature: m.Signature}
	if err := r.parseProtected(phdr); err != nil {
		return engine.TxID{}, err
	}
	if kid := KeyID(key); kid == nil || !bytes.Equal(kid, r.KeyID) {
		return engine.TxID{}, engine.Errorf(engine.KindInvalid, CodeUnknownServiceKey, "signature kid is not the service key's")
	}
	if err := cose.VerifySignature(r.Alg, key, r.Protected, root[:], r.Signature); err != nil {
		return engine.TxID{}, err
	}
	return r.TxID, nil
}

// A signature entry at seqno S signs the tree before it, so no signature
// proves its own leaf, and the last one of a quiet service would wait for
// a receipt forever. Its receipt is what CCF gives for a signature
// transaction instead: the signature itself over the root it signs, here
// the entry's COSE_Sign1 with that root attached as its payload and no
// inclusion proof.

// BuildSignatureReceipt is the receipt of a signature entry: sig (its
// COSE_Sign1, payload detached) with root attached.
func BuildSignatureReceipt(sig []byte, root engine.Digest) ([]byte, error) {
	m, err := cose.DecodeSign1(sig)
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeInvalidReceipt, err, "signature is not a COSE_Sign1")
	}
	if m.Payload != nil {
		return nil, invalidReceipt("signature payload must be detached (the Merkle root)")
	}
	m.Payload = bytes.Clone(root[:])
	return m.Encode()
}

// IsSignatureReceipt reports whether raw is a signature entry's receipt (a
// COSE_Sign1 with an attached payload) rather than an inclusion receipt.
func IsSignatureReceipt(raw []byte) bool {
	m, err := cose.DecodeSign1(raw)
	return err == nil && m.Payload != nil
}

// VerifySignatureReceipt checks a signature entry's receipt against the
// service key: the attached payload is the 32-byte root, and the signature
// must verify over it with the CCF signature header. The Verified it
// returns has TxID = the signature entry and no leaf.
func VerifySignatureReceipt(raw []byte, key crypto.PublicKey) (*Verified, error) {
	m, err := cose.DecodeSign1(raw)
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeInvalidReceipt, err, "not a COSE_Sign1 receipt")
	}
	if len(m.Payload) != len(engine.Digest{}) {
		return nil, invalidReceipt("a signature receipt's payload is the 32-byte root, got %d bytes", len(m.Payload))
	}
	if len(m.Unprotected) != 0 {
		return nil, invalidReceipt("a signature receipt has no unprotected header")
	}
	root := engine.Digest(m.Payload)
	m.Payload = nil
	detached, err := m.Encode()
	if err != nil {
		return nil, err
	}
	tx, err := VerifySignature(detached, root, key)
	if err != nil {
		return nil, err
	}
	phdr, _ := m.ProtectedHeader()
	r := Receipt{Protected: m.Protected, Signature: m.Signature}
	if err := r.parseProtected(phdr); err != nil {
		return nil, err
	}
	r.TxID = tx
	return &Verified{Receipt: r, Root: root}, nil
}

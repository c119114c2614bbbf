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

package cose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/asn1"
	"math/big"

	"github.com/gavelhq/gavel/engine"
)

// SigStructureHead is the Signature1 Sig_structure's bytes before a payload
// of payloadLen bytes: SigStructure(protected, payload) is SigStructureHead
// followed by the payload. A signer that keeps a large payload in pieces
// hashes the head and then the pieces, without joining them.
func SigStructureHead(protected []byte, payloadLen int) []byte {
	return appendSigStructureHead(make([]byte, 0, 24+len(protected)), protected, payloadLen)
}

func appendSigStructureHead(b, protected []byte, payloadLen int) []byte {
	b = append(b, 0x84, 0x6a)
	b = append(b, "Signature1"...)
	b = appendBytes(b, protected)
	b = append(b, 0x40) // external_aad = h''
	return appendHead(b, majorBytes, uint64(payloadLen))
}

// PrehashOf is the hash an ECDSA algorithm signs with, or false for an
// algorithm whose signature is not over a digest made here (EdDSA, RSA-PSS).
func PrehashOf(alg Algorithm) (crypto.Hash, bool) {
	switch alg {
	case ES256:
		return crypto.SHA256, true
	case ES384:
		return crypto.SHA384, true
	case ES512:
		return crypto.SHA512, true
	}
	return 0, false
}

// SignDigest makes the COSE signature (r || s, each the curve's size) of a
// Sig_structure whose digest under PrehashOf(alg) is digest: the same
// signature Sign makes from the Sig_structure itself.
func SignDigest(signer crypto.Signer, alg Algorithm, digest []byte) ([]byte, error) {
	h, ok := PrehashOf(alg)
	if !ok {
		return nil, engine.Errorf(engine.KindInvalid, CodeUnsupportedAlgorithm, "%s does not sign a digest", alg)
	}
	if err := alg.CheckKey(signer.Public()); err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeUnsupportedAlgorithm, err, "cannot sign %s with this key", alg)
	}
	if len(digest) != h.Size() {
		return nil, engine.Errorf(engine.KindInvalid, CodeUnsupportedAlgorithm, "a %s digest has %d bytes, not %d", alg, h.Size(), len(digest))
	}
	der, err := signer.Sign(rand.Reader, digest, h)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "SigningFailed", err, "signing failed")
	}
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 {
		return nil, engine.Errorf(engine.KindInternal, "SigningFailed", "the signer's ECDSA signature is not ASN.1")
	}
	n := (signer.Public().(*ecdsa.PublicKey).Curve.Params().BitSize + 7) / 8
	sig := make([]byte, 2*n)
	rs.R.FillBytes(sig[:n])
	rs.S.FillBytes(sig[n:])
	return sig, nil
}

// Sign1Head is a tagged COSE_Sign1's bytes before a payload of payloadLen
// bytes; the payload and AppendSignature complete it (Sign1.Encode in
// pieces, for a payload written straight into the message's buffer).
func Sign1Head(protected []byte, unprotected Header, payloadLen int) ([]byte, error) {
	uhdr, err := unprotected.Encode()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 16+len(protected)+len(uhdr))
	b = append(b, 0xd2, 0x84) // tag 18, array(4)
	b = appendBytes(b, protected)
	b = append(b, uhdr...)
	return appendHead(b, majorBytes, uint64(payloadLen)), nil
}

// AppendSignature appends the signature item that ends a COSE_Sign1.
func AppendSignature(b, sig []byte) []byte { return appendBytes(b, sig) }

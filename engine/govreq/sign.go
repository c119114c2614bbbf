package govreq

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"hash"
	"math/big"
	"time"

	"github.com/gavelhq/gavel/engine"
)

// EncodeProtected returns the protected header of a governance request
// exactly as CCF's Python client (ccf.cose.create_cose_sign1) writes it: a
// map in RFC 8949 core deterministic order, {1: alg, 4: h'<member id hex>',
// "ccf.gov.msg.type": type, "ccf.gov.msg.created_at": seconds,
// "ccf.gov.msg.proposal_id": id (only when non-empty)}.
func EncodeProtected(alg Algorithm, memberID string, typ MsgType, createdAt int64, proposalID string) ([]byte, error) {
	if !alg.Supported() {
		return nil, engine.Errorf(engine.KindInvalid, "UnsupportedAlgorithm", "algorithm %s is not supported", alg)
	}
	if !isLowerHex64([]byte(memberID)) {
		return nil, invalidHeader("member id %q is not 64 lowercase hex characters", truncate([]byte(memberID)))
	}
	if !typ.supported() {
		return nil, invalidHeader("%s %q is not one of proposal, ballot, withdrawal", HeaderMsgType, typ)
	}
	if createdAt < 0 {
		return nil, invalidHeader("%s %d is before 1970", HeaderCreatedAt, createdAt)
	}
	switch {
	case typ.NeedsProposalID() && !isLowerHex64([]byte(proposalID)):
		return nil, invalidHeader("a %s needs a %s of 64 lowercase hex characters, not %q", typ, HeaderProposalID, truncate([]byte(proposalID)))
	case !typ.NeedsProposalID() && proposalID != "":
		return nil, invalidHeader("a %s carries no %s", typ, HeaderProposalID)
	}
	h := map[any]any{
		int64(1):        int64(alg),
		int64(4):        []byte(memberID),
		HeaderMsgType:   string(typ),
		HeaderCreatedAt: createdAt,
	}
	if proposalID != "" {
		h[HeaderProposalID] = proposalID
	}
	return engine.CBOR.Marshal(h)
}

// Sign makes a governance request as CCF's clients do: COSE_Sign1 tagged 18,
// the protected header of EncodeProtected, an empty unprotected map, the
// payload attached, signed by signer, whose public key must be cert's. alg
// follows the key (P-256 → ES256, P-384 → ES384, Ed25519 → EdDSA).
// proposalID is required for a ballot or a withdrawal and refused for a
// proposal.
func Sign(signer crypto.Signer, cert *x509.Certificate, typ MsgType, proposalID string, createdAt time.Time, payload []byte) ([]byte, error) {
	if signer == nil || cert == nil {
		return nil, engine.Errorf(engine.KindInvalid, "InvalidKey", "signing needs a key and its certificate")
	}
	alg, err := AlgorithmForKey(cert.PublicKey)
	if err != nil {
		return nil, err
	}
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, engine.Errorf(engine.KindInvalid, "InvalidKey", "the signing key is not the certificate's key")
	}
	protected, err := EncodeProtected(alg, MemberID(cert), typ, createdAt.Unix(), proposalID)
	if err != nil {
		return nil, err
	}
	if payload == nil {
		payload = []byte{}
	}
	sig, err := signSigStructure(signer, alg, protected, payload)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 2+9+len(protected)+1+9+len(payload)+2+len(sig))
	b = append(b, 0xc0|tagSign1, 0x84) // 18([
	b = appendBytes(b, protected)
	b = append(b, 0xa0) // {}
	b = appendBytes(b, payload)
	return appendBytes(b, sig), nil
}

// signSigStructure signs the Sig_structure and returns the COSE signature:
// r‖s for ECDSA (each padded to the curve size), the 64 bytes for Ed25519.
func signSigStructure(signer crypto.Signer, alg Algorithm, protected, payload []byte) ([]byte, error) {
	if alg == EdDSA {
		sig, err := signer.Sign(rand.Reader, appendSigStructure(nil, protected, nil, payload), crypto.Hash(0))
		if err != nil {
			return nil, engine.Wrap(engine.KindInternal, "SigningFailed", err, "EdDSA signing failed")
		}
		return sig, nil
	}
	var h hash.Hash = sha256.New()
	opts := crypto.SHA256
	if alg == ES384 {
		h, opts = sha512.New384(), crypto.SHA384
	}
	writeSigStructure(h, protected, nil, payload)
	der, err := signer.Sign(rand.Reader, h.Sum(nil), opts)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "SigningFailed", err, "%s signing failed", alg)
	}
	sig, ok := ecdsaDERToRaw(der, signatureSize(alg)/2)
	if !ok {
		return nil, engine.Errorf(engine.KindInternal, "SigningFailed", "%s signer returned a malformed signature", alg)
	}
	return sig, nil
}

// ecdsaDERToRaw turns an ASN.1 ECDSA-Sig-Value into COSE's fixed-width r‖s.
func ecdsaDERToRaw(der []byte, size int) ([]byte, bool) {
	var v struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &v)
	if err != nil || len(rest) > 0 || v.R.Sign() <= 0 || v.S.Sign() <= 0 ||
		v.R.BitLen() > 8*size || v.S.BitLen() > 8*size {
		return nil, false
	}
	out := make([]byte, 2*size)
	v.R.FillBytes(out[:size])
	v.S.FillBytes(out[size:])
	return out, true
}

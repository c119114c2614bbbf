package receipt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
)

// CCF profile labels and values.
const (
	// LabelVDS is the verifiable data structure header (protected).
	LabelVDS int64 = 395
	// LabelVDP is the verifiable data proofs header (unprotected).
	LabelVDP int64 = 396
	// VDSCCFLedgerSHA256 is CCF's ledger tree, the only one gavel writes.
	VDSCCFLedgerSHA256 int64 = 2
	// LabelInclusionProofs is the key of the inclusion proofs in LabelVDP.
	LabelInclusionProofs int64 = -1
	// LabelCCF is the text label of CCF's own protected parameters.
	LabelCCF = "ccf.v1"
	// ccfTxID is the key of the signed transaction id in LabelCCF.
	ccfTxID = "txid"
)

// KeyID is CCF's kid for a service key: the lower-case hex SHA-256 of the
// key's DER SubjectPublicKeyInfo, as ASCII bytes. It is nil for a key that
// has no DER form.
func KeyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(der)
	return []byte(hex.EncodeToString(sum[:]))
}

// Signer signs Merkle roots with the service identity, as a signature entry
// stores them.
type Signer struct {
	key  crypto.Signer
	cert *x509.Certificate
	alg  cose.Algorithm
	kid  []byte
}

// NewSigner takes the service identity: an ECDSA P-256 or P-384 key and its
// certificate.
func NewSigner(key crypto.Signer, cert *x509.Certificate) (*Signer, error) {
	pub, ok := key.Public().(*ecdsa.PublicKey)
	if !ok || (pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384()) {
		return nil, engine.Errorf(engine.KindInvalid, CodeInvalidServiceKey, "the service key must be ECDSA P-256 or P-384")
	}
	if cert == nil || !pub.Equal(cert.PublicKey) {
		return nil, engine.Errorf(engine.KindInvalid, CodeInvalidServiceKey, "the service certificate does not hold the service key")
	}
	alg, err := cose.DefaultAlgorithm(pub)
	if err != nil {
		return nil, err
	}
	return &Signer{key: key, cert: cert, alg: alg, kid: KeyID(pub)}, nil
}

// KeyID is the kid this signer writes.
func (s *Signer) KeyID() []byte { return append([]byte(nil), s.kid...) }

// Certificate is the service certificate.
func (s *Signer) Certificate() *x509.Certificate { return s.cert }

// Public is the service public key.
func (s *Signer) Public() crypto.PublicKey { return s.key.Public() }

// SignRoot returns the tagged COSE_Sign1 with detached payload that signs
// root as of transaction tx. Its protected header is {alg, kid, CWT claims
// {iss, sub (each when not ""), iat}, vds: 2, "ccf.v1": {"txid": tx}}.
func (s *Signer) SignRoot(root engine.Digest, tx engine.TxID, iat time.Time, issuer, subject string) ([]byte, error) {
	if _, err := engine.ParseTxID(tx.String()); err != nil {
		return nil, err
	}
	claims := map[any]any{int64(cose.ClaimIssuedAt): iat.Unix()}
	if issuer != "" {
		claims[int64(cose.ClaimIssuer)] = issuer
	}
	if subject != "" {
		claims[int64(cose.ClaimSubject)] = subject
	}
	phdr := map[any]any{
		cose.LabelAlg:       int64(s.alg),
		cose.LabelKID:       s.kid,
		cose.LabelCWTClaims: claims,
		LabelVDS:            VDSCCFLedgerSHA256,
		LabelCCF:            map[string]string{ccfTxID: tx.String()},
	}
	protected, err := engine.CBOR.Marshal(phdr)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "EncodingFailed", err, "signature header does not encode")
	}
	sig, err := cose.Sign(s.key, s.alg, protected, root[:])
	if err != nil {
		return nil, err
	}
	return (&cose.Sign1{Protected: protected, Signature: sig}).Encode()
}

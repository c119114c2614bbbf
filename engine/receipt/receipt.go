package receipt

import (
	"bytes"
	"crypto"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
)

// maxCommitEvidence is the CCF profile's bound on the leaf's evidence string.
const maxCommitEvidence = 1024

// Receipt is a parsed CCF COSE receipt whose signature is not yet verified.
type Receipt struct {
	Alg   cose.Algorithm
	KeyID []byte
	// TxID is the signature transaction ("ccf.v1" txid), not the leaf's.
	TxID     engine.TxID
	IssuedAt time.Time
	// Issuer and Subject are the CWT claims iss and sub; "" when absent.
	Issuer  string
	Subject string
	Leaf    Leaf
	Path    []PathElem
	// Protected and Signature are the signed header and the signature.
	Protected []byte
	Signature []byte
}

// ProvenRoot is the Merkle root the proof leads to: the payload the
// signature must cover.
func (r *Receipt) ProvenRoot() engine.Digest { return ComputeRoot(r.Leaf, r.Path) }

// Verified is a receipt whose signature verified over Root, the root its
// proof computes.
type Verified struct {
	Receipt
	Root engine.Digest
}

// proofBody is the CBOR form of a ccf-inclusion-proof.
type proofBody struct {
	Leaf leafBody   `cbor:"1,keyasint"`
	Path []pathBody `cbor:"2,keyasint"`
}

type leafBody struct {
	_              struct{} `cbor:",toarray"`
	WriteSetDigest []byte
	CommitEvidence string
	ClaimsDigest   []byte
}

type pathBody struct {
	_    struct{} `cbor:",toarray"`
	Left bool
	Hash []byte
}

// Build makes the receipt for leaf from a signature entry's COSE_Sign1 (as
// Signer.SignRoot returns it): the same message with the inclusion proof
// {1: leaf, 2: path} in unprotected header 396 under -1.
func Build(signature []byte, leaf Leaf, path []PathElem) ([]byte, error) {
	m, err := cose.DecodeSign1(signature)
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeInvalidReceipt, err, "signature is not a COSE_Sign1")
	}
	if m.Payload != nil {
		return nil, invalidReceipt("signature payload must be detached")
	}
	if n := len(leaf.CommitEvidence); n == 0 || n > maxCommitEvidence {
		return nil, invalidReceipt("commit evidence has %d bytes, the CCF profile allows 1 to %d", n, maxCommitEvidence)
	}
	body := proofBody{
		Leaf: leafBody{WriteSetDigest: leaf.WriteSetDigest[:], CommitEvidence: leaf.CommitEvidence, ClaimsDigest: leaf.ClaimsDigest[:]},
		Path: make([]pathBody, len(path)),
	}
	for i, p := range path {
		body.Path[i] = pathBody{Left: p.Left, Hash: p.Hash[:]}
	}
	proof, err := engine.CBOR.Marshal(body)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "EncodingFailed", err, "inclusion proof does not encode")
	}
	vdp, err := engine.CBOR.Marshal(map[int64][][]byte{LabelInclusionProofs: {proof}})
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "EncodingFailed", err, "proofs header does not encode")
	}
	if m.Unprotected == nil {
		m.Unprotected = cose.Header{}
	}
	m.Unprotected.Set(LabelVDP, vdp)
	return m.Encode()
}

// Parse reads a CCF COSE receipt strictly: a tagged COSE_Sign1 with detached
// payload; protected alg, kid, vds = 2, CWT claims with iat, and "ccf.v1"
// txid; unprotected 396 holding exactly one inclusion proof under -1.
func Parse(raw []byte) (*Receipt, error) {
	m, err := cose.DecodeSign1(raw)
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeInvalidReceipt, err, "not a COSE_Sign1 receipt")
	}
	if m.Payload != nil {
		return nil, invalidReceipt("payload must be detached (the Merkle root)")
	}
	r := &Receipt{Protected: m.Protected, Signature: m.Signature}
	phdr, err := m.ProtectedHeader()
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeInvalidReceipt, err, "protected header")
	}
	if err := r.parseProtected(phdr); err != nil {
		return nil, err
	}
	vdp, ok, err := m.Unprotected.Map(LabelVDP)
	if !ok || err != nil {
		return nil, invalidReceipt("unprotected header has no proofs map (396)")
	}
	rawProofs, ok := vdp.Get(LabelInclusionProofs)
	if !ok {
		return nil, invalidReceipt("proofs map (396) has no inclusion proofs (-1)")
	}
	if len(vdp) != 1 {
		return nil, invalidReceipt("proofs map (396) must hold only inclusion proofs (-1)")
	}
	var proofs []cbor.RawMessage
	if err := engine.CBORDecode.Unmarshal(rawProofs, &proofs); err != nil || len(proofs) != 1 {
		return nil, invalidReceipt("inclusion proofs (-1) must be an array of exactly one proof")
	}
	proof, err := cose.DecodeBytes(proofs[0])
	if err != nil {
		return nil, invalidReceipt("inclusion proof: %v", err)
	}
	if err := r.parseProof(proof); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Receipt) parseProtected(phdr cose.Header) error {
	alg, ok, err := phdr.Int(cose.LabelAlg)
	if !ok || err != nil {
		return invalidReceipt("protected header needs an integer alg (1)")
	}
	r.Alg = cose.Algorithm(alg)
	if !r.Alg.Supported() {
		return engine.Errorf(engine.KindInvalid, cose.CodeUnsupportedAlgorithm, "receipt algorithm %s is not supported", r.Alg)
	}
	if _, crit := phdr.Get(cose.LabelCrit); crit {
		return invalidReceipt("receipt has critical headers, gavel processes none")
	}
	if r.KeyID, ok, err = phdr.Bytes(cose.LabelKID); !ok || err != nil || len(r.KeyID) == 0 {
		return invalidReceipt("protected header needs a kid (4) byte string")
	}
	if vds, ok, err := phdr.Int(LabelVDS); !ok || err != nil || vds != VDSCCFLedgerSHA256 {
		return invalidReceipt("protected header needs vds (395) = %d (CCF_LEDGER_SHA256)", VDSCCFLedgerSHA256)
	}
	claims, ok, err := phdr.Map(cose.LabelCWTClaims)
	if !ok || err != nil {
		return invalidReceipt("protected header needs CWT claims (15)")
	}
	iat, ok := claims.Get(cose.ClaimIssuedAt)
	if !ok {
		return invalidReceipt("CWT claims need iat (6)")
	}
	secs, err := cose.DecodeNumericDate(iat)
	if err != nil {
		return invalidReceipt("CWT claim iat (6): %v", err)
	}
	r.IssuedAt = time.Unix(secs, 0).UTC()
	if r.Issuer, _, err = claims.Text(cose.ClaimIssuer); err != nil {
		return invalidReceipt("CWT claim iss (1): %v", err)
	}
	if r.Subject, _, err = claims.Text(cose.ClaimSubject); err != nil {
		return invalidReceipt("CWT claim sub (2): %v", err)
	}
	ccf, ok, err := phdr.Map(LabelCCF)
	if !ok || err != nil {
		return invalidReceipt("protected header needs %q", LabelCCF)
	}
	txid, ok, err := ccf.Text(ccfTxID)
	if !ok || err != nil {
		return invalidReceipt("%q needs a text txid", LabelCCF)
	}
	if r.TxID, err = engine.ParseTxID(txid); err != nil {
		return engine.Wrap(engine.KindInvalid, CodeInvalidReceipt, err, "%q txid", LabelCCF)
	}
	return nil
}

func (r *Receipt) parseProof(proof []byte) error {
	m, err := cose.DecodeHeader(proof)
	if err != nil || len(m) != 2 {
		return invalidReceipt("inclusion proof must be a map {1: leaf, 2: path}")
	}
	rawLeaf, ok1 := m.Get(1)
	rawPath, ok2 := m.Get(2)
	if !ok1 || !ok2 {
		return invalidReceipt("inclusion proof must be a map {1: leaf, 2: path}")
	}
	var leaf []cbor.RawMessage
	if err := engine.CBORDecode.Unmarshal(rawLeaf, &leaf); err != nil || len(leaf) != 3 {
		return invalidReceipt("leaf must be [write_set_digest, commit_evidence, claims_digest]")
	}
	if err := decodeDigest(leaf[0], &r.Leaf.WriteSetDigest); err != nil {
		return invalidReceipt("leaf write_set_digest: %v", err)
	}
	if r.Leaf.CommitEvidence, err = cose.DecodeText(leaf[1]); err != nil {
		return invalidReceipt("leaf commit_evidence: %v", err)
	}
	if n := len(r.Leaf.CommitEvidence); n == 0 || n > maxCommitEvidence {
		return invalidReceipt("leaf commit_evidence has %d bytes, the CCF profile allows 1 to %d", n, maxCommitEvidence)
	}
	if err := decodeDigest(leaf[2], &r.Leaf.ClaimsDigest); err != nil {
		return invalidReceipt("leaf claims_digest: %v", err)
	}
	var path []cbor.RawMessage
	if err := engine.CBORDecode.Unmarshal(rawPath, &path); err != nil || rawPath[0]>>5 != 4 {
		return invalidReceipt("path must be an array of [left, hash]")
	}
	r.Path = make([]PathElem, len(path))
	for i, el := range path {
		var pair []cbor.RawMessage
		if err := engine.CBORDecode.Unmarshal(el, &pair); err != nil || el[0]>>5 != 4 || len(pair) != 2 {
			return invalidReceipt("path element %d must be [left: bool, hash: bstr .size 32]", i)
		}
		switch {
		case bytes.Equal(pair[0], []byte{0xf5}):
			r.Path[i].Left = true
		case bytes.Equal(pair[0], []byte{0xf4}):
		default:
			return invalidReceipt("path element %d: left is not a bool", i)
		}
		if err := decodeDigest(pair[1], &r.Path[i].Hash); err != nil {
			return invalidReceipt("path element %d hash: %v", i, err)
		}
	}
	return nil
}

func decodeDigest(raw cbor.RawMessage, out *engine.Digest) error {
	b, err := cose.DecodeBytes(raw)
	if err != nil {
		return err
	}
	if len(b) != len(out) {
		return fmt.Errorf("has %d bytes, not %d", len(b), len(out))
	}
	copy(out[:], b)
	return nil
}

// Verify checks a receipt against a service key: its kid must be KeyID(key)
// (else UnknownServiceKey) and its signature must verify over the root that
// the inclusion proof computes (else InvalidSignature).
func Verify(receipt []byte, key crypto.PublicKey) (*Verified, error) {
	r, err := Parse(receipt)
	if err != nil {
		return nil, err
	}
	return r.Verify(key)
}

// VerifyWithClaimsDigest is Verify that also requires the leaf to commit to
// claimsDigest (else ClaimsDigestMismatch).
func VerifyWithClaimsDigest(receipt []byte, key crypto.PublicKey, claimsDigest engine.Digest) (*Verified, error) {
	v, err := Verify(receipt, key)
	if err != nil {
		return nil, err
	}
	if v.Leaf.ClaimsDigest != claimsDigest {
		return nil, engine.Errorf(engine.KindInvalid, CodeClaimsDigestMismatch, "receipt leaf commits to claims digest %x, expected %x", v.Leaf.ClaimsDigest, claimsDigest)
	}
	return v, nil
}

// Verify checks the parsed receipt's kid and signature against key.
func (r *Receipt) Verify(key crypto.PublicKey) (*Verified, error) {
	kid := KeyID(key)
	if kid == nil || !bytes.Equal(kid, r.KeyID) {
		return nil, engine.Errorf(engine.KindInvalid, CodeUnknownServiceKey, "receipt kid %q is not the service key's %q", truncate(r.KeyID), kid)
	}
	root := r.ProvenRoot()
	if err := cose.VerifySignature(r.Alg, key, r.Protected, root[:], r.Signature); err != nil {
		return nil, err
	}
	return &Verified{Receipt: *r, Root: root}, nil
}

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

func invalidReceipt(format string, args ...any) *engine.Error {
	return engine.Errorf(engine.KindInvalid, CodeInvalidReceipt, format, args...)
}

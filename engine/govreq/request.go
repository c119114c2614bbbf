package govreq

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"

	"github.com/fxamacker/cbor/v2"
	"github.com/gavelhq/gavel/engine"
)

// MsgType is the ccf.gov.msg.type header: what a governance request does.
type MsgType string

// The message types gavel accepts. CCF's others ("recovery_share",
// "encrypted_recovery_share") are refused: gavel has no recovery shares.
const (
	MsgProposal   MsgType = "proposal"
	MsgBallot     MsgType = "ballot"
	MsgWithdrawal MsgType = "withdrawal"
	// MsgStateDigest asks for a fresh state digest; MsgAck acknowledges it
	// (CCF's member activation).
	MsgStateDigest MsgType = "state_digest"
	MsgAck         MsgType = "ack"
)

// NeedsProposalID reports whether a request of this type names a proposal.
func (t MsgType) NeedsProposalID() bool { return t == MsgBallot || t == MsgWithdrawal }

func (t MsgType) supported() bool {
	return t == MsgProposal || t.NeedsProposalID() || t == MsgStateDigest || t == MsgAck
}

// CCF's governance header labels (text labels in the protected header).
const (
	HeaderMsgType    = "ccf.gov.msg.type"
	HeaderCreatedAt  = "ccf.gov.msg.created_at"
	HeaderProposalID = "ccf.gov.msg.proposal_id"
)

// DefaultMaxSize is the envelope size limit Parse applies when given none.
const DefaultMaxSize = 1 << 20

// Request is a parsed governance request: its headers are well-formed but
// its signature is not yet checked (see Verify).
type Request struct {
	Type       MsgType
	KeyID      string    // kid: the member id, 64 lowercase hex (SHA-256 of the cert's DER)
	CreatedAt  int64     // ccf.gov.msg.created_at, Unix seconds, ≥ 0
	ProposalID string    // ccf.gov.msg.proposal_id; empty for a proposal
	Payload    []byte    // never nil; empty for CCF-style withdrawals
	Alg        Algorithm // from the protected header
	Raw        []byte    // the whole envelope, verbatim (the proposal id hashes it)
	Protected  []byte    // the protected header's bytes, as signed
	Signature  []byte
}

func missingHeader(name string) *engine.Error {
	return engine.Errorf(engine.KindInvalid, "MissingHeader", "protected header %s is missing", name)
}

func invalidHeader(format string, args ...any) *engine.Error {
	return engine.Errorf(engine.KindInvalid, "InvalidHeader", format, args...)
}

// Parse decodes a signed governance request the way CCF does: a COSE_Sign1
// tagged 18, attached payload, and in the protected header alg (ES256,
// ES384 or EdDSA), kid (the member id as a byte string of 64 lowercase hex
// characters, as CCF's clients send it), ccf.gov.msg.type, an integer
// ccf.gov.msg.created_at ≥ 0, and for a ballot or a withdrawal
// ccf.gov.msg.proposal_id (64 lowercase hex). Envelopes over maxSize bytes
// are refused (maxSize ≤ 0 means DefaultMaxSize). Other headers are ignored
// unless listed as critical. Parse copies raw; the Request owns its bytes.
//
// Errors (all *engine.Error): RequestTooLarge (KindTooLarge); InvalidCOSE,
// MissingHeader, InvalidHeader, UnsupportedAlgorithm (KindInvalid).
func Parse(raw []byte, maxSize int) (*Request, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if len(raw) > maxSize {
		return nil, engine.Errorf(engine.KindTooLarge, "RequestTooLarge",
			"request of %d bytes is over the limit of %d", len(raw), maxSize)
	}
	raw = bytes.Clone(raw)
	s, err := decodeSign1(raw)
	if err != nil {
		return nil, err
	}
	if !s.tagged {
		return nil, invalidCOSE("COSE_Sign1 is not tagged 18")
	}
	if s.payload == nil {
		return nil, invalidCOSE("detached payloads are not supported")
	}
	r := &Request{Raw: raw, Protected: s.protected, Payload: s.payload, Signature: s.signature}
	if err := r.readHeaders(s.protectedH, s.unprotected); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Request) readHeaders(h, unprotected header) error {
	// protectedOnly: CCF reads these from the protected header alone.
	protectedOnly := func(label any, name string) (cbor.RawMessage, error) {
		if v, ok := h[label]; ok {
			return v, nil
		}
		if _, ok := unprotected[label]; ok {
			return nil, engine.Errorf(engine.KindInvalid, "MissingHeader",
				"header %s must be in the protected header, not the unprotected one", name)
		}
		return nil, missingHeader(name)
	}

	v, err := protectedOnly(labelAlg, "alg")
	if err != nil {
		return err
	}
	if r.Alg, err = algorithmOf(v); err != nil {
		return err
	}

	if v, err = protectedOnly(labelKID, "kid"); err != nil {
		return err
	}
	if majorOf(v) != majorBytes {
		return invalidHeader("kid must be a byte string (the member id's hex characters), not %s", diag(v))
	}
	kid, err := bytesOf(v)
	if err != nil {
		return invalidHeader("kid does not decode")
	}
	if !isLowerHex64(kid) {
		return invalidHeader("kid %q is not a member id (64 lowercase hex characters)", truncate(kid))
	}
	r.KeyID = string(kid)

	if v, err = protectedOnly(HeaderMsgType, HeaderMsgType); err != nil {
		return err
	}
	var typ string
	if majorOf(v) != majorText || engine.CBORDecode.Unmarshal(v, &typ) != nil {
		return invalidHeader("%s must be a text string, not %s", HeaderMsgType, diag(v))
	}
	r.Type = MsgType(typ)
	if !r.Type.supported() {
		return invalidHeader("%s %q is not one of proposal, ballot, withdrawal, state_digest, ack", HeaderMsgType, truncate([]byte(typ)))
	}

	if v, err = protectedOnly(HeaderCreatedAt, HeaderCreatedAt); err != nil {
		return err
	}
	if majorOf(v) != majorUint || engine.CBORDecode.Unmarshal(v, &r.CreatedAt) != nil {
		return invalidHeader("%s must be an integer number of seconds in [0, 2^63), not %s", HeaderCreatedAt, diag(v))
	}

	v, err = protectedOnly(HeaderProposalID, HeaderProposalID)
	switch {
	case err != nil && r.Type.NeedsProposalID():
		return err
	case err == nil && !r.Type.NeedsProposalID():
		return invalidHeader("a %s carries no %s", r.Type, HeaderProposalID)
	case err == nil:
		var id string
		if majorOf(v) != majorText || engine.CBORDecode.Unmarshal(v, &id) != nil {
			return invalidHeader("%s must be a text string, not %s", HeaderProposalID, diag(v))
		}
		if !isLowerHex64([]byte(id)) {
			return invalidHeader("%s %q is not a proposal id (64 lowercase hex characters)", HeaderProposalID, truncate([]byte(id)))
		}
		r.ProposalID = id
	}

	if v, ok := h[labelCrit]; ok {
		return checkCrit(v, h)
	}
	if _, ok := unprotected[labelCrit]; ok {
		return invalidHeader("crit must be in the protected header")
	}
	return nil
}

// checkCrit accepts a crit header (RFC 9052 §3.1) only if every label it
// lists is present and is one Parse interprets.
func checkCrit(v cbor.RawMessage, h header) error {
	var labels []any
	if majorOf(v) != majorArray || engine.CBORDecode.Unmarshal(v, &labels) != nil || len(labels) == 0 {
		return invalidHeader("crit must be a non-empty array of labels")
	}
	for _, l := range labels {
		name, ok := l.(string)
		known := ok && (name == HeaderMsgType || name == HeaderCreatedAt || name == HeaderProposalID)
		if _, present := h[l]; !known || !present {
			return invalidHeader("critical header %v is not understood", l)
		}
	}
	return nil
}

// Verify checks that cert is the member the request names (kid = MemberID
// of cert) and that the signature verifies with cert's key under the
// request's alg. It shares VerifySign1's signature check. Certificate
// validity dates are not checked, as in CCF.
//
// Errors: InvalidSignature (KindUnauthorized).
func (r *Request) Verify(cert *x509.Certificate) error {
	if cert == nil {
		return invalidSignature("no member certificate to verify with")
	}
	if id := MemberID(cert); id != r.KeyID {
		return invalidSignature("kid %s does not name the certificate given (member %s)", r.KeyID, id)
	}
	return verifySignature(r.Alg, r.Protected, nil, r.Payload, r.Signature, cert.PublicKey)
}

// ContentID is the hex SHA-256 of what the member signed (protected header
// and payload, as the COSE Sig_structure). Unlike ProposalID it does not
// change when a third party re-encodes the envelope, alters its unprotected
// header or swaps an ECDSA signature (r, s) for its twin (r, n−s): replay
// checks should key on it.
func (r *Request) ContentID() string {
	h := sha256.New()
	writeSigStructure(h, r.Protected, nil, r.Payload)
	return hex.EncodeToString(h.Sum(nil))
}

// MemberID is a member's id: the hex SHA-256 of its certificate's DER.
func MemberID(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// ProposalID is the id of the proposal a request envelope creates: the hex
// SHA-256 of the whole envelope, so a client knows it before sending.
func ProposalID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

func isLowerHex64(b []byte) bool {
	if len(b) != 64 {
		return false
	}
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// truncate keeps error messages short when echoing client input.
func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}

package nodes

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
)

// Limits of a join request.
const (
	MaxJoinBytes     = 4 << 20 // the COSE_Sign1 with evidence and statement
	MaxNodeDataBytes = 16 << 10
	maxFieldBytes    = 256
)

// Codes of the join and delete refusals (CCF's where CCF has one).
const (
	CodeInvalidJoinRequest      = "InvalidJoinRequest"
	CodeInvalidQuote            = "InvalidQuote"
	CodeInvalidNodeState        = "InvalidNodeState"
	CodeNodeAlreadyExists       = "NodeAlreadyExists"
	CodeNodeNotFound            = "NodeNotFound"
	CodeNodeNotRetiredCommitted = "NodeNotRetiredCommitted"
)

// Why a join request is not a well-formed signed request.
var (
	ErrEnvelope  = errors.New("join request is not a COSE_Sign1 signed with EdDSA")
	ErrPublicKey = errors.New("join request's public_key is not an Ed25519 PEM public key")
	ErrSignature = errors.New("join request is not signed by the key it carries")
	ErrField     = errors.New("join request field is invalid")
)

// Roles a node joins as.
const (
	RoleService     = engine.NodeRoleService
	RoleParticipant = "participant"
)

// JoinRequest is the payload of a join: the node's key and what it says
// about itself. TransparentStatement is the statement of its host data
// (the config's host_data_transparent_statement_path), when it has one.
type JoinRequest struct {
	PublicKey            string          `json:"public_key"`
	Role                 string          `json:"role"`
	Address              string          `json:"address"`
	CodeVersion          string          `json:"code_version,omitempty"`
	Attestation          json.RawMessage `json:"attestation"`
	TransparentStatement []byte          `json:"transparent_statement,omitempty"`
	NodeData             json.RawMessage `json:"node_data,omitempty"`
}

// SignJoin makes the signed join request a node sends: a COSE_Sign1 with
// alg EdDSA over the JSON request, whose public_key is key's.
func SignJoin(key ed25519.PrivateKey, req JoinRequest) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	req.PublicKey = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	payload, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	phdr := cose.Header{}
	phdr.Set(int64(1), mustCBOR(int64(cose.EdDSA)))
	protected, err := phdr.Encode()
	if err != nil {
		return nil, err
	}
	sig, err := cose.Sign(key, cose.EdDSA, protected, payload)
	if err != nil {
		return nil, err
	}
	m := cose.Sign1{Protected: protected, Unprotected: cose.Header{}, Payload: payload, Signature: sig}
	return m.Encode()
}

// SignedJoin is a join request whose signature verifies under the key it
// carries: the node has proved it holds that key.
type SignedJoin struct {
	Raw       []byte
	Request   JoinRequest
	PublicKey ed25519.PublicKey
	KeyDER    []byte
	NodeID    string
}

// ParseJoin checks a join request's envelope, fields and signature.
func ParseJoin(raw []byte) (*SignedJoin, error) {
	bad := func(reason error, format string, args ...any) error {
		return engine.Wrap(engine.KindInvalid, CodeInvalidJoinRequest, reason, format, args...)
	}
	if len(raw) > MaxJoinBytes {
		return nil, engine.Errorf(engine.KindTooLarge, "RequestTooLarge", "join request of %d bytes is over the limit of %d", len(raw), MaxJoinBytes)
	}
	m, err := cose.DecodeSign1(raw)
	if err != nil {
		return nil, bad(ErrEnvelope, "%v", engine.AsError(err).Message)
	}
	phdr, err := m.ProtectedHeader()
	if err != nil {
		return nil, bad(ErrEnvelope, "protected header")
	}
	if alg, ok, _ := phdr.Int(int64(1)); !ok || cose.Algorithm(alg) != cose.EdDSA {
		return nil, bad(ErrEnvelope, "alg must be EdDSA (-8)")
	}
	if m.Payload == nil {
		return nil, bad(ErrEnvelope, "the payload is detached")
	}
	var req JoinRequest
	dec := json.NewDecoder(bytes.NewReader(m.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		return nil, bad(ErrField, "the payload is not a JSON join request: %v", err)
	}
	blk, _ := pem.Decode([]byte(req.PublicKey))
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, bad(ErrPublicKey, "no PEM PUBLIC KEY block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	pub, ok := k.(ed25519.PublicKey)
	if err != nil || !ok {
		return nil, bad(ErrPublicKey, "the key is %T", k)
	}
	if err := cose.VerifySignature(cose.EdDSA, pub, m.Protected, m.Payload, m.Signature); err != nil {
		return nil, engine.Wrap(engine.KindUnauthorized, "InvalidSignature", ErrSignature, "join request signature")
	}
	if err := checkFields(req); err != nil {
		return nil, bad(ErrField, "%v", err)
	}
	return &SignedJoin{Raw: raw, Request: req, PublicKey: pub, KeyDER: blk.Bytes, NodeID: engine.NodeID(pub)}, nil
}

func checkFields(req JoinRequest) error {
	switch req.Role {
	case RoleService, RoleParticipant:
	default:
		return fmt.Errorf("role %q is neither %q nor %q", clip(req.Role), RoleService, RoleParticipant)
	}
	host, port, err := net.SplitHostPort(req.Address)
	if err != nil || host == "" || len(req.Address) > maxFieldBytes {
		return fmt.Errorf("address %q is not host:port", clip(req.Address))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("address %q has no port 1..65535", clip(req.Address))
	}
	if len(req.CodeVersion) > maxFieldBytes {
		return fmt.Errorf("code_version is over %d bytes", maxFieldBytes)
	}
	if len(req.Attestation) == 0 || string(req.Attestation) == "null" {
		return errors.New("attestation is missing")
	}
	if len(req.NodeData) > MaxNodeDataBytes {
		return fmt.Errorf("node_data of %d bytes is over the limit of %d", len(req.NodeData), MaxNodeDataBytes)
	}
	if len(req.NodeData) > 0 && !json.Valid(req.NodeData) {
		return errors.New("node_data is not JSON")
	}
	return nil
}

func mustCBOR(v any) []byte {
	b, err := engine.CBOR.Marshal(v)
	if err != nil {
		panic("nodes: " + err.Error())
	}
	return b
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

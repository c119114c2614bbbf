package gov

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
)

// Member activation, as in CCF: set_member adds a member as Accepted; it
// may not propose or vote until it asks for a state digest (state_digest)
// and signs it back (ack), which makes it Active.

// MemberAccepted is the status of a member that has not yet acknowledged
// the state digest (constitution.MemberActive is the other).
const MemberAccepted = "Accepted"

// TableMemberAcks holds member id → memberAck (JSON). It sits outside
// "gov." so that no constitution can write it.
const TableMemberAcks = "gavel.gov.member_acks"

// CodeInvalidAuthenticationInfo is CCF's code for every failure to
// authenticate a signed request (HTTP 401).
const CodeInvalidAuthenticationInfo = "InvalidAuthenticationInfo"

func errUnknownMember(id string) error {
	return engine.Errorf(engine.KindUnauthorized, CodeInvalidAuthenticationInfo, "Signer is not a member: no member has id %s", id)
}

// memberAck is a member's ack record: the digest it must sign and, once it
// has, the content id of its signed acknowledgement.
type memberAck struct {
	StateDigest string `json:"state_digest"`
	SignedAck   string `json:"signed_ack,omitempty"`
}

// StateDigest is CCF's Acks.StateDigest: the answer of GET and :update.
type StateDigest struct {
	MemberID    string `json:"memberId"`
	StateDigest string `json:"stateDigest"`
}

// LoadStateDigest is the digest a member must acknowledge, if it asked
// for one.
func LoadStateDigest(st engine.StateReader, memberID string) (StateDigest, bool, error) {
	a, ok, err := loadAck(st, memberID)
	return StateDigest{MemberID: memberID, StateDigest: a.StateDigest}, ok, err
}

func loadAck(st engine.StateReader, id string) (memberAck, bool, error) {
	var a memberAck
	b, ok, err := st.Get(TableMemberAcks, id)
	if err != nil || !ok {
		return a, ok, err
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, false, fmt.Errorf("gov: ack of member %s: %w", id, err)
	}
	return a, true, nil
}

// UpdateStateDigest gives a member a fresh state digest to sign: the hex
// SHA-256 of the latest signature entry, which signs the Merkle root (CCF
// hands out the root itself; the signature binds it and, unlike the root,
// is in the state execution reads).
type UpdateStateDigest struct{ Req VerifiedRequest }

// Ack is a member's signed acknowledgement of its state digest.
type Ack struct{ Req VerifiedRequest }

func (c UpdateStateDigest) Kind() engine.EntryKind { return engine.KindGovStateDigest }
func (c Ack) Kind() engine.EntryKind               { return engine.KindGovAck }
func (c UpdateStateDigest) Input() []byte          { return c.Req.Raw }
func (c Ack) Input() []byte                        { return c.Req.Raw }

func (c UpdateStateDigest) Execute(st engine.StateReader, f engine.Facts) (engine.Effect, error) {
	r := &run{st: st, facts: f}
	if prev, err := r.beginAs(c.Req, false); err != nil || prev != nil {
		return engine.Effect{Replayed: prev != nil, Result: prev}, err
	}
	sig, ok, err := st.Get(engine.TableSignatures, "")
	if err != nil {
		return engine.Effect{}, err
	}
	if !ok {
		return engine.Effect{}, engine.Errorf(engine.KindInternal, "InternalError", "Service has no signatures to ack yet - try again soon.")
	}
	sum := sha256.Sum256(sig)
	a, _, err := loadAck(st, c.Req.KeyID)
	if err != nil {
		return engine.Effect{}, err
	}
	a.StateDigest = hex.EncodeToString(sum[:])
	rec, _ := json.Marshal(a)
	r.writes = append(r.writes, engine.Write{Table: TableMemberAcks, Key: c.Req.KeyID, Value: rec})
	res, _ := json.Marshal(StateDigest{MemberID: c.Req.KeyID, StateDigest: a.StateDigest})
	return r.finishWith(c.Req, res)
}

// Execute checks the signed digest against the one handed out and makes
// the member Active. The answer is empty (CCF: 204 No Content).
func (c Ack) Execute(st engine.StateReader, f engine.Facts) (engine.Effect, error) {
	r := &run{st: st, facts: f}
	if prev, err := r.beginAs(c.Req, false); err != nil || prev != nil {
		return engine.Effect{Replayed: prev != nil, Result: prev}, err
	}
	a, ok, err := loadAck(st, c.Req.KeyID)
	if err != nil {
		return engine.Effect{}, err
	}
	if !ok {
		return engine.Effect{}, engine.Errorf(engine.KindForbidden, "AuthorizationFailed", "No ACK record exists for member %s.", c.Req.KeyID)
	}
	var body struct {
		StateDigest *string `json:"stateDigest"`
	}
	if json.Unmarshal(c.Req.Payload, &body) != nil || body.StateDigest == nil {
		return engine.Effect{}, engine.Errorf(engine.KindInvalid, "InvalidInput",
			`Signed request body is not a JSON object containing required string field "stateDigest"`)
	}
	if *body.StateDigest != a.StateDigest {
		return engine.Effect{}, engine.Errorf(engine.KindInvalid, "StateDigestMismatch",
			"Submitted state digest is not valid. Expected %s, received %q", a.StateDigest, truncate(*body.StateDigest))
	}
	a.SignedAck = c.Req.ContentID()
	rec, _ := json.Marshal(a)
	member, err := activated(st, c.Req.KeyID)
	if err != nil {
		return engine.Effect{}, err
	}
	r.writes = append(r.writes,
		engine.Write{Table: TableMemberAcks, Key: c.Req.KeyID, Value: rec},
		engine.Write{Table: constitution.TableMembers, Key: c.Req.KeyID, Value: member})
	return r.finishWith(c.Req, []byte{})
}

// activated is a member's record with its status Active, every other
// field as the constitution wrote it.
func activated(st engine.StateReader, id string) ([]byte, error) {
	b, ok, err := st.Get(constitution.TableMembers, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errUnknownMember(id)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, fmt.Errorf("gov: member %s: %w", id, err)
	}
	fields["status"] = json.RawMessage(`"` + constitution.MemberActive + `"`)
	return json.Marshal(fields)
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

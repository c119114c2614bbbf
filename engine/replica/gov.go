package replica

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/state"
	"github.com/gavelhq/gavel/handlers"
	"github.com/gavelhq/gavel/projections"
)

// submitGov verifies a member's signed request (type typ) against the
// current members, then commits it. The route's proposal id, and member
// id, must match the envelope (CCF's codes when they do not).
func (r *Replica) submitGov(ctx context.Context, typ govreq.MsgType, proposalID, memberID string, raw []byte) (handlers.GovAnswer, error) {
	select {
	case r.verifySlots <- struct{}{}:
	case <-ctx.Done():
		return handlers.GovAnswer{}, engine.Wrap(engine.KindUnavailable, "Timeout", ctx.Err(), "no verification slot before the deadline")
	}
	st, done, err := r.reading()
	if err != nil {
		<-r.verifySlots
		return handlers.GovAnswer{}, err
	}
	req, err := gov.Verify(st, raw, typ, int(r.cfg.MaxGovRequestBytes))
	done()
	<-r.verifySlots
	if err != nil {
		return handlers.GovAnswer{}, err
	}
	if proposalID != "" && req.ProposalID != proposalID {
		return handlers.GovAnswer{}, engine.Errorf(engine.KindInvalid, "InvalidResourceName",
			"Authenticated proposal id does not match URL (the route names %s, the envelope %s)", proposalID, req.ProposalID)
	}
	if memberID != "" && req.KeyID != memberID {
		if typ == govreq.MsgStateDigest || typ == govreq.MsgAck {
			return handlers.GovAnswer{}, engine.Errorf(engine.KindInvalid, gov.CodeInvalidAuthenticationInfo,
				"Member ID from path parameter (%s) does not match member ID from body signature (%s).", memberID, req.KeyID)
		}
		return handlers.GovAnswer{}, engine.Errorf(engine.KindInvalid, "InvalidResourceName",
			"Authenticated member id does not match URL (the route names %s, the envelope is signed by %s)", memberID, req.KeyID)
	}
	out, err := r.submit(ctx, gov.Command(req, r.cfg.ScriptLimits))
	if err != nil {
		return handlers.GovAnswer{}, err
	}
	tx := out.TxID
	if tx.Seqno == 0 { // replayed: nothing written
		tx, _ = r.Committed(ctx)
	}
	return handlers.GovAnswer{Body: out.Result, TxID: tx}, nil
}

// Proposals lists proposals, optionally only those in one state.
func (r *Replica) Proposals(ctx context.Context, state string, page projections.Page) ([]*gov.Proposal, bool, error) {
	st, done, err := r.reading()
	if err != nil {
		return nil, false, err
	}
	defer done()
	return reads(st).Proposals(state, page)
}

// Proposal returns one proposal.
func (r *Replica) Proposal(ctx context.Context, id string) (*gov.Proposal, error) {
	return read(r, func(st *state.Store) (*gov.Proposal, error) { return reads(st).Proposal(id) })
}

// Ballot returns a member's ballot on a proposal.
func (r *Replica) Ballot(ctx context.Context, proposalID, memberID string) (string, error) {
	return read(r, func(st *state.Store) (string, error) { return reads(st).Ballot(proposalID, memberID) })
}

// Members lists the members.
func (r *Replica) Members(ctx context.Context, page projections.Page) ([]projections.Member, bool, error) {
	st, done, err := r.reading()
	if err != nil {
		return nil, false, err
	}
	defer done()
	return reads(st).Members(page)
}

// Member returns one member.
func (r *Replica) Member(ctx context.Context, id string) (projections.Member, error) {
	return read(r, func(st *state.Store) (projections.Member, error) { return reads(st).Member(id) })
}

// StateDigest is the digest a member must acknowledge.
func (r *Replica) StateDigest(ctx context.Context, memberID string) (gov.StateDigest, error) {
	return read(r, func(st *state.Store) (gov.StateDigest, error) { return reads(st).StateDigest(memberID) })
}

// ConstitutionSource is the constitution module in force.
func (r *Replica) ConstitutionSource(ctx context.Context) (string, error) {
	return read(r, func(st *state.Store) (string, error) { return gov.ConstitutionSource(st) })
}

// ServiceInfo describes the service's governance.
func (r *Replica) ServiceInfo(ctx context.Context) (projections.ServiceInfo, error) {
	st, done, err := r.reading()
	if err != nil {
		return projections.ServiceInfo{}, err
	}
	defer done()
	info, err := reads(st).ServiceInfo()
	if err != nil {
		return info, err
	}
	info.Certificate = string(r.identity.CertPEM)
	if g, ok, _ := st.Leaf(1); ok {
		info.CreationTransactionID = engine.TxID{View: g.View, Seqno: 1}.String()
	}
	return info, nil
}

// JSApp describes the application bundle's endpoints.
func (r *Replica) JSApp(ctx context.Context) (projections.JSApp, error) {
	return read(r, func(st *state.Store) (projections.JSApp, error) { return reads(st).JSApp() })
}

// JoinPolicies describes what joining nodes must present.
func (r *Replica) JoinPolicies(ctx context.Context) (projections.JoinPolicies, error) {
	return read(r, func(st *state.Store) (projections.JoinPolicies, error) { return reads(st).JoinPolicies() })
}

// Committed is the last transaction this replica applied: gavel answers a
// write only once it is durable, so what is applied is committed.
func (r *Replica) Committed(ctx context.Context) (engine.TxID, error) {
	st, done, err := r.reading()
	if err != nil {
		return engine.TxID{}, err
	}
	defer done()
	m := st.Meta()
	return engine.TxID{View: m.View, Seqno: m.Seqno}, nil
}

// TransactionStatus is CCF's status of tx: Committed when the entry at its
// seqno has its view, Invalid when another view holds that seqno or a
// later view has started, Unknown when it may still come. (Pending never
// shows: entries are applied only once durable.)
func (r *Replica) TransactionStatus(ctx context.Context, tx engine.TxID) (string, error) {
	st, done, err := r.reading()
	if err != nil {
		return "", err
	}
	defer done()
	m := st.Meta()
	if tx.Seqno <= m.Seqno {
		rec, ok, err := st.Leaf(tx.Seqno)
		if err != nil {
			return "", err
		}
		if ok && rec.View == tx.View {
			return "Committed", nil
		}
		return "Invalid", nil
	}
	if tx.View < r.currentView() {
		return "Invalid", nil
	}
	return "Unknown", nil
}

// IsStatement reports whether tx is a committed statement entry.
func (r *Replica) IsStatement(ctx context.Context, tx engine.TxID) (bool, error) {
	rec, err := read(r, func(st *state.Store) (state.LeafRecord, error) { return leafOf(st, tx) })
	if engine.KindOf(err) == engine.KindNotFound {
		return false, nil
	}
	return err == nil && rec.Kind == engine.KindStatement, err
}

// nodeID is the replica's node id as CCF forms one: the hex SHA-256 of its
// public key's DER (the replica signs with the service key).
func (r *Replica) nodeID() string {
	der, err := x509.MarshalPKIXPublicKey(r.identity.Cert.PublicKey)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func reads(st *state.Store) projections.Governance { return projections.Governance{State: st} }

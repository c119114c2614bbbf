package replica

import (
	"context"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	statepkg "github.com/gavelhq/gavel/engine/state"
	"github.com/gavelhq/gavel/projections"
)

// SubmitGov verifies a member's signed request (type typ) against the
// current members, then commits it. For ballots and withdrawals the route's
// proposal id, and for ballots its member id, must match the envelope.
func (r *Replica) SubmitGov(ctx context.Context, typ govreq.MsgType, proposalID, memberID string, raw []byte) ([]byte, error) {
	select {
	case r.verifySlots <- struct{}{}:
	case <-ctx.Done():
		return nil, engine.Wrap(engine.KindUnavailable, "Timeout", ctx.Err(), "no verification slot before the deadline")
	}
	st, done, err := r.reading()
	if err != nil {
		<-r.verifySlots
		return nil, err
	}
	req, err := gov.Verify(st, raw, typ, int(r.cfg.MaxGovRequestBytes))
	done()
	<-r.verifySlots
	if err != nil {
		return nil, err
	}
	if proposalID != "" && req.ProposalID != proposalID {
		return nil, engine.Errorf(engine.KindInvalid, "ProposalIdMismatch", "the route names proposal %s, the envelope %s", proposalID, req.ProposalID)
	}
	if memberID != "" && req.KeyID != memberID {
		return nil, engine.Errorf(engine.KindInvalid, "MemberIdMismatch", "the route names member %s, the envelope is signed by %s", memberID, req.KeyID)
	}
	out, err := r.submit(ctx, gov.Command(req, r.cfg.ScriptLimits))
	if err != nil {
		return nil, err
	}
	return out.Result, nil
}

// Proposals lists proposals, optionally only those in one state.
func (r *Replica) Proposals(ctx context.Context, state string) ([]*gov.Proposal, error) {
	return read(r, func(st *statepkg.Store) ([]*gov.Proposal, error) { return reads(st).Proposals(state) })
}

// Proposal returns one proposal.
func (r *Replica) Proposal(ctx context.Context, id string) (*gov.Proposal, error) {
	return read(r, func(st *statepkg.Store) (*gov.Proposal, error) { return reads(st).Proposal(id) })
}

// Members lists the members.
func (r *Replica) Members(ctx context.Context) ([]*gov.Member, error) {
	return read(r, func(st *statepkg.Store) ([]*gov.Member, error) { return reads(st).Members() })
}

// ConstitutionSource is the constitution module in force.
func (r *Replica) ConstitutionSource(ctx context.Context) (string, error) {
	return read(r, func(st *statepkg.Store) (string, error) { return gov.ConstitutionSource(st) })
}

// ServiceInfo describes the service's governance.
func (r *Replica) ServiceInfo(ctx context.Context) (map[string]any, error) {
	return read(r, r.serviceInfo)
}

func (r *Replica) serviceInfo(st *statepkg.Store) (map[string]any, error) {
	info, err := reads(st).ServiceInfo()
	if err != nil {
		return nil, err
	}
	info["status"] = "Open"
	info["service_certificate"] = string(r.identity.CertPEM)
	if g, ok, _ := st.Leaf(1); ok {
		info["creation_txid"] = engine.TxID{View: g.View, Seqno: 1}.String()
	}
	return info, nil
}

func reads(st *statepkg.Store) projections.Governance { return projections.Governance{State: st} }

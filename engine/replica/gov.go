package replica

import (
	"context"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
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
	req, err := gov.Verify(r.store, raw, typ, int(r.cfg.MaxGovRequestBytes))
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
	out, err := r.seq.Submit(ctx, gov.Command(req, r.cfg.ScriptLimits))
	if err != nil {
		return nil, err
	}
	return out.Result, nil
}

// Proposals lists proposals, optionally only those in one state.
func (r *Replica) Proposals(ctx context.Context, state string) ([]*gov.Proposal, error) {
	return r.reads().Proposals(state)
}

// Proposal returns one proposal.
func (r *Replica) Proposal(ctx context.Context, id string) (*gov.Proposal, error) {
	return r.reads().Proposal(id)
}

// Members lists the members.
func (r *Replica) Members(ctx context.Context) ([]*gov.Member, error) { return r.reads().Members() }

// ConstitutionSource is the constitution module in force.
func (r *Replica) ConstitutionSource(ctx context.Context) (string, error) {
	return gov.ConstitutionSource(r.store)
}

// ServiceInfo describes the service's governance.
func (r *Replica) ServiceInfo(ctx context.Context) (map[string]any, error) {
	info, err := r.reads().ServiceInfo()
	if err != nil {
		return nil, err
	}
	info["status"] = "Open"
	info["service_certificate"] = string(r.identity.CertPEM)
	if g, ok, _ := r.store.Leaf(1); ok {
		info["creation_txid"] = engine.TxID{View: g.View, Seqno: 1}.String()
	}
	return info, nil
}

func (r *Replica) reads() projections.Governance { return projections.Governance{State: r.store} }

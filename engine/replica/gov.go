package replica

import (
	"context"
	"encoding/json"
	"sort"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
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
	var out []*gov.Proposal
	var loadErr error
	err := r.store.Range(gov.TableProposals, func(id string, _ []byte) bool {
		p, ok, err := gov.LoadProposal(r.store, id)
		if err != nil {
			loadErr = err
			return false
		}
		if ok && (state == "" || p.State == state) {
			out = append(out, p)
		}
		return true
	})
	if err == nil {
		err = loadErr
	}
	return out, err
}

// Proposal returns one proposal.
func (r *Replica) Proposal(ctx context.Context, id string) (*gov.Proposal, error) {
	p, ok, err := gov.LoadProposal(r.store, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, engine.Errorf(engine.KindNotFound, "ProposalNotFound", "no proposal %s", id)
	}
	return p, nil
}

// Members lists the members.
func (r *Replica) Members(ctx context.Context) ([]*gov.Member, error) {
	var out []*gov.Member
	var loadErr error
	err := r.store.Range(constitution.TableMembers, func(id string, _ []byte) bool {
		m, ok, err := gov.LoadMember(r.store, id)
		if err != nil {
			loadErr = err
			return false
		}
		if ok {
			out = append(out, m)
		}
		return true
	})
	if err == nil {
		err = loadErr
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MemberID < out[j].MemberID })
	return out, err
}

// ConstitutionSource is the constitution module in force.
func (r *Replica) ConstitutionSource(ctx context.Context) (string, error) {
	return gov.ConstitutionSource(r.store)
}

// ServiceInfo describes the service's governance.
func (r *Replica) ServiceInfo(ctx context.Context) (map[string]any, error) {
	info := map[string]any{
		"status":              "Open",
		"service_certificate": string(r.identity.CertPEM),
	}
	if b, ok, err := r.store.Get(constitution.TableServiceConfig, ""); err != nil {
		return nil, err
	} else if ok {
		info["configuration"] = json.RawMessage(b)
	}
	if b, ok, err := r.store.Get(engine.TableService, exec.KeyServiceSettings); err != nil {
		return nil, err
	} else if ok {
		info["ledger"] = json.RawMessage(b)
	}
	if g, ok, _ := r.store.Leaf(1); ok {
		info["creation_txid"] = engine.TxID{View: g.View, Seqno: 1}.String()
	}
	return info, nil
}

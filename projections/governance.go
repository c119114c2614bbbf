package projections

import (
	"encoding/json"
	"sort"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/gov"
)

// Governance is the read side of governance over a state.
type Governance struct{ State engine.StateReader }

// Proposals lists proposals in id order, only those in state when it is
// not "". Open proposals come from the open index, not a scan.
func (g Governance) Proposals(state string) ([]*gov.Proposal, error) {
	table := gov.TableProposals
	if state == gov.StateOpen {
		table = gov.TableOpenProposals
	}
	var ids []string
	if err := g.State.Range(table, func(id string, _ []byte) bool { ids = append(ids, id); return true }); err != nil {
		return nil, err
	}
	out := []*gov.Proposal{}
	for _, id := range ids {
		p, ok, err := gov.LoadProposal(g.State, id)
		if err != nil {
			return nil, err
		}
		if ok && (state == "" || p.State == state) {
			out = append(out, p)
		}
	}
	return out, nil
}

// Proposal returns one proposal, or a NotFound error.
func (g Governance) Proposal(id string) (*gov.Proposal, error) {
	p, ok, err := gov.LoadProposal(g.State, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, engine.Errorf(engine.KindNotFound, "ProposalNotFound", "no proposal %s", id)
	}
	return p, nil
}

// Members lists the members in id order.
func (g Governance) Members() ([]*gov.Member, error) {
	var ids []string
	if err := g.State.Range(constitution.TableMembers, func(id string, _ []byte) bool { ids = append(ids, id); return true }); err != nil {
		return nil, err
	}
	sort.Strings(ids)
	out := []*gov.Member{}
	for _, id := range ids {
		m, ok, err := gov.LoadMember(g.State, id)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// ServiceInfo is the service's governance configuration and ledger
// settings as recorded, plus what the caller adds (certificate, status).
func (g Governance) ServiceInfo() (map[string]any, error) {
	info := map[string]any{}
	for key, at := range map[string][2]string{
		"configuration": {constitution.TableServiceConfig, ""},
		"ledger":        {engine.TableService, exec.KeyServiceSettings},
	} {
		b, ok, err := g.State.Get(at[0], at[1])
		if err != nil {
			return nil, err
		}
		if ok {
			info[key] = json.RawMessage(b)
		}
	}
	return info, nil
}

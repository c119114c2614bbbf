package projections_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/projections"
)

func proposal(id, state string) engine.Write {
	b, _ := json.Marshal(map[string]any{"proposal_id": id, "proposer_id": "p", "state": state, "body": "{}", "ballots": map[string]string{}})
	return engine.Write{Table: gov.TableProposals, Key: id, Value: b}
}

func TestProposalsByState(t *testing.T) {
	st := constitution.MemState{}
	states := []string{gov.StateOpen, gov.StateAccepted, gov.StateOpen, gov.StateDropped, gov.StateWithdrawn}
	for i, s := range states {
		id := fmt.Sprintf("p%d", i)
		st.Apply(engine.WriteSet{proposal(id, s)})
		if s == gov.StateOpen {
			st.Apply(engine.WriteSet{{Table: gov.TableOpenProposals, Key: id, Value: []byte{}}})
		}
	}
	g := projections.Governance{State: st}
	for _, tc := range []struct {
		state string
		want  string
	}{
		{"", "p0 p1 p2 p3 p4"},
		{gov.StateOpen, "p0 p2"},
		{gov.StateAccepted, "p1"},
		{gov.StateRejected, ""},
	} {
		ps, err := g.Proposals(tc.state)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for i, p := range ps {
			if i > 0 {
				got += " "
			}
			got += p.ProposalID
		}
		if got != tc.want {
			t.Errorf("state %q: %q, want %q", tc.state, got, tc.want)
		}
	}
	if _, err := g.Proposal("nope"); engine.AsError(err).Code != "ProposalNotFound" {
		t.Fatalf("unknown proposal: %v", err)
	}
	if p, err := g.Proposal("p3"); err != nil || p.State != gov.StateDropped {
		t.Fatalf("p3: %+v %v", p, err)
	}
}

func TestMembersAndInfo(t *testing.T) {
	st := constitution.MemState{}
	st.Apply(engine.WriteSet{
		{Table: constitution.TableMembers, Key: "bb", Value: []byte(`{"cert":"B","status":"Active","member_data":null}`)},
		{Table: constitution.TableMembers, Key: "aa", Value: []byte(`{"cert":"A","status":"Active","member_data":{"x":1}}`)},
		{Table: constitution.TableServiceConfig, Key: "", Value: []byte(`{"max_open_proposals":3}`)},
	})
	g := projections.Governance{State: st}
	ms, err := g.Members()
	if err != nil || len(ms) != 2 || ms[0].MemberID != "aa" || ms[0].Cert != "A" || string(ms[0].MemberData) != `{"x":1}` {
		t.Fatalf("members %+v %v", ms, err)
	}
	info, err := g.ServiceInfo()
	if err != nil || string(info["configuration"].(json.RawMessage)) != `{"max_open_proposals":3}` || info["ledger"] != nil {
		t.Fatalf("info %v %v", info, err)
	}
}

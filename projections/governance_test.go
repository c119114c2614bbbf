package projections_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/projections"
)

func proposal(id, state string) engine.Write {
	b, _ := json.Marshal(map[string]any{"proposalId": id, "proposerId": "p", "proposalState": state, "body": "{}", "ballots": map[string]string{}})
	return engine.Write{Table: gov.TableProposals, Key: id, Value: b}
}

func ids(ps []*gov.Proposal) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ProposalID)
	}
	return strings.Join(out, " ")
}

func TestProposalsByStateAndPage(t *testing.T) {
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
		page  projections.Page
		want  string
		more  bool
	}{
		{"", projections.Page{}, "p0 p1 p2 p3 p4", false},
		{gov.StateOpen, projections.Page{}, "p0 p2", false},
		{gov.StateAccepted, projections.Page{}, "p1", false},
		{gov.StateRejected, projections.Page{}, "", false},
		{"", projections.Page{Limit: 2}, "p0 p1", true},
		{"", projections.Page{After: "p1", Limit: 2}, "p2 p3", true},
		{"", projections.Page{After: "p3", Limit: 2}, "p4", false},
		{"", projections.Page{After: "p2", Limit: 2}, "p3 p4", false},
		{gov.StateOpen, projections.Page{Limit: 1}, "p0", true},
		{gov.StateOpen, projections.Page{After: "p0", Limit: 1}, "p2", false},
		{"", projections.Page{After: "p4"}, "", false},
	} {
		ps, more, err := g.Proposals(tc.state, tc.page)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(ps); got != tc.want || more != tc.more {
			t.Errorf("state %q page %+v: %q more=%v, want %q more=%v", tc.state, tc.page, got, more, tc.want, tc.more)
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
		{Table: constitution.TableMembers, Key: "bb", Value: []byte(`{"cert":"B","status":"Accepted","member_data":null,"recovery_role":"Owner","encryption_pub_key":"K"}`)},
		{Table: constitution.TableMembers, Key: "aa", Value: []byte(`{"cert":"A","status":"Active","member_data":{"x":1}}`)},
		{Table: constitution.TableServiceConfig, Key: "", Value: []byte(`{"max_open_proposals":3}`)},
	})
	g := projections.Governance{State: st}
	ms, more, err := g.Members(projections.Page{})
	if err != nil || more || len(ms) != 2 {
		t.Fatalf("members %+v %v %v", ms, more, err)
	}
	got, _ := json.Marshal(ms)
	want := `[{"memberId":"aa","status":"Active","memberData":{"x":1},"certificate":"A"},` +
		`{"memberId":"bb","status":"Accepted","certificate":"B","publicEncryptionKey":"K","recoveryRole":"Owner"}]`
	if string(got) != want {
		t.Fatalf("members\n got %s\nwant %s", got, want)
	}
	if ms, more, _ := g.Members(projections.Page{Limit: 1}); len(ms) != 1 || !more || ms[0].MemberID != "aa" {
		t.Fatalf("first page %+v %v", ms, more)
	}
	if _, err := g.Member("cc"); engine.AsError(err).Code != "ResourceNotFound" {
		t.Fatalf("unknown member: %v", err)
	}
	info, err := g.ServiceInfo()
	if err != nil || info.Configuration.MaxOpenProposals != 3 || info.Configuration.ReplayWindowSeconds != gov.DefaultConfig().ReplayWindowSeconds {
		t.Fatalf("info %+v %v", info, err)
	}
	if _, err := g.StateDigest("aa"); engine.AsError(err).Code != "ResourceNotFound" {
		t.Fatalf("no digest yet: %v", err)
	}
}

func TestJoinPoliciesAndJSApp(t *testing.T) {
	st := constitution.MemState{}
	g := projections.Governance{State: st}
	jp, err := g.JoinPolicies()
	if b, _ := json.Marshal(jp); err != nil || string(b) != `{"sgx":{"measurements":[]},"snp":{"measurements":[],"hostData":{},"uvmEndorsements":{},"tcbVersions":{}},"virtual":{"measurements":[],"hostData":[]}}` {
		t.Fatalf("empty join policy %s %v", b, err)
	}
	st.Apply(engine.WriteSet{
		{Table: constitution.TableSNPHostData, Key: "ab", Value: []byte(`{"security_policy":"p"}`)},
		{Table: constitution.TableSNPMeasurements, Key: "cd", Value: []byte(`"AllowedToJoin"`)},
		{Table: constitution.TableJSApp, Key: "", Value: []byte(`{"metadata":{"endpoints":{"/x":{"get":{"js_module":"m.js","js_function":"f","forwarding_required":"never","authn_policies":["no_auth"],"mode":"readonly"}}}},"modules":[]}`)},
	})
	jp, _ = g.JoinPolicies()
	if jp.SNP.HostData["ab"] != "p" || len(jp.SNP.Measurements) != 1 {
		t.Fatalf("join policy %+v", jp)
	}
	app, err := g.JSApp()
	e := app.Endpoints["/x"]["get"]
	if err != nil || e.JSModule != "m.js" || e.Mode != "ReadOnly" || e.ForwardingRequired != "Never" || e.OpenAPI == nil {
		t.Fatalf("js app %+v %v", app, err)
	}
}

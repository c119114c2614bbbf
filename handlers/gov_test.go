package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/handlers"
)

type govFixture struct {
	*fixture
	members []*govreq.Member
}

func newGovFixture(t testing.TB, n int) *govFixture {
	var initial []gov.InitialMember
	var members []*govreq.Member
	for i := range n {
		certPEM, keyPEM, err := govreq.Keygen([]string{"ES256", "ES384", "EdDSA"}[i%3], "m"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		m, err := govreq.LoadMember(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
		initial = append(initial, gov.InitialMember{CertPEM: certPEM})
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := replica.Open(context.Background(), replica.Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0",
		Sequencer: fastSignatures(), Logger: logger, Members: initial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	srv := serveEdge(t, handlers.NewHTTP(r, handlers.DefaultLimits(), logger), handlers.ConnLimits{})
	return &govFixture{fixture: &fixture{t: t, r: r, url: srv.URL}, members: members}
}

func (f *govFixture) sign(m *govreq.Member, typ govreq.MsgType, proposalID string, payload []byte) []byte {
	env, err := m.Sign(typ, proposalID, time.Now(), payload)
	if err != nil {
		f.t.Fatal(err)
	}
	return env
}

func ballot(yes bool) []byte {
	b, _ := json.Marshal(map[string]string{"ballot": "export function vote() { return " + strconv.FormatBool(yes) + "; }"})
	return b
}

func (f *govFixture) proposal(status int, _ http.Header, body []byte) gov.Proposal {
	f.t.Helper()
	var p gov.Proposal
	if status != http.StatusOK || json.Unmarshal(body, &p) != nil || p.ProposalID == "" {
		f.t.Fatalf("%d %s", status, body)
	}
	return p
}

func TestGovernanceOverHTTP(t *testing.T) {
	f := newGovFixture(t, 3)
	a, b, c := f.members[0], f.members[1], f.members[2]
	body := []byte(`{"actions":[{"name":"set_service_configuration","args":{"max_open_proposals":7}}]}`)
	env := f.sign(a, govreq.MsgProposal, "", body)
	p := f.proposal(f.do("POST", "/gov/members/proposals:create", "application/cose", env))
	if p.State != gov.StateOpen || p.ProposerID != a.ID || p.ProposalID != govreq.ProposalID(env) {
		t.Fatalf("created %+v", p)
	}
	// The same envelope again: the first answer, no new entry.
	before := f.r.Store().Meta().Seqno
	if again := f.proposal(f.do("POST", "/gov/members/proposals:create", "application/cose", env)); again.ProposalID != p.ProposalID {
		t.Fatalf("replay answered %+v", again)
	}
	if f.r.Store().Meta().Seqno != before {
		if rec, _, _ := f.r.Store().Leaf(f.r.Store().Meta().Seqno); rec.Kind != "signature" {
			t.Fatal("a replayed proposal wrote an entry")
		}
	}
	path := "/gov/members/proposals/" + p.ProposalID
	p = f.proposal(f.do("POST", path+"/ballots/"+b.ID+":submit", "application/cose", f.sign(b, govreq.MsgBallot, p.ProposalID, ballot(true))))
	if p.State != gov.StateOpen || p.BallotCount != 1 {
		t.Fatalf("after one ballot %+v", p)
	}
	p = f.proposal(f.do("POST", path+"/ballots/"+c.ID+":submit", "application/cose", f.sign(c, govreq.MsgBallot, p.ProposalID, ballot(true))))
	if p.State != gov.StateAccepted || !p.FinalVotes[b.ID] || !p.FinalVotes[c.ID] {
		t.Fatalf("after two ballots %+v", p)
	}
	if got := f.proposal(f.do("GET", path, "", nil)); got.State != gov.StateAccepted {
		t.Fatalf("GET %+v", got)
	}
	status, _, actions := f.do("GET", path+"/actions", "", nil)
	if status != 200 || string(actions) != string(body)+"\n" {
		t.Fatalf("actions %d %q", status, actions)
	}
	status, _, list := f.do("GET", "/gov/members/proposals?state=Accepted", "", nil)
	if status != 200 || !strings.Contains(string(list), p.ProposalID) {
		t.Fatalf("list %d %s", status, list)
	}
	status, _, list = f.do("GET", "/gov/members/proposals?state=Open", "", nil)
	if status != 200 || strings.Contains(string(list), p.ProposalID) {
		t.Fatalf("open list %d %s", status, list)
	}
	status, _, info := f.do("GET", "/gov/service/info", "", nil)
	if status != 200 || !strings.Contains(string(info), `"max_open_proposals":7`) {
		t.Fatalf("info %d %s", status, info)
	}
	status, _, ms := f.do("GET", "/gov/service/members", "", nil)
	if status != 200 || strings.Count(string(ms), `"status":"Active"`) != 3 {
		t.Fatalf("members %d %s", status, ms)
	}
	status, _, schema := f.do("GET", "/schemas/actions/set_member.json", "", nil)
	if status != 200 || !strings.Contains(string(schema), `"cert"`) {
		t.Fatalf("schema %d %s", status, schema)
	}
	status, h, src := f.do("GET", "/gov/service/constitution", "", nil)
	if status != 200 || h.Get("Content-Type") != "text/javascript" || !strings.Contains(string(src), "export") {
		t.Fatalf("constitution %d %s", status, src)
	}

	// Withdrawal by the proposer.
	p2 := f.proposal(f.do("POST", "/gov/members/proposals:create", "application/cose",
		f.sign(b, govreq.MsgProposal, "", []byte(`{"actions":[{"name":"remove_node_join_policy","args":{}}]}`))))
	w := f.proposal(f.do("POST", "/gov/members/proposals/"+p2.ProposalID+":withdraw", "application/cose", f.sign(b, govreq.MsgWithdrawal, p2.ProposalID, nil)))
	if w.State != gov.StateWithdrawn {
		t.Fatalf("withdrawn %+v", w)
	}
}

func TestGovernanceBadInput(t *testing.T) {
	f := newGovFixture(t, 2)
	a, b := f.members[0], f.members[1]
	p := f.proposal(f.do("POST", "/gov/members/proposals:create", "application/cose",
		f.sign(a, govreq.MsgProposal, "", []byte(`{"actions":[{"name":"remove_node_join_policy","args":{}}]}`))))
	f.waitSigned()
	before := f.r.Store().Meta()
	stranger, err := func() (*govreq.Member, error) {
		c, k, err := govreq.Keygen("ES256", "stranger")
		if err != nil {
			return nil, err
		}
		return govreq.LoadMember(c, k)
	}()
	if err != nil {
		t.Fatal(err)
	}
	good := []byte(`{"actions":[{"name":"remove_node_join_policy","args":{}}]}`)
	bBallot := f.sign(b, govreq.MsgBallot, p.ProposalID, ballot(true))
	badSig := f.sign(a, govreq.MsgProposal, "", []byte(`{"actions":[{"name":"remove_node_join_policy","args":{"x":1}}]}`))
	badSig[len(badSig)-3] ^= 1
	ballotPath := "/gov/members/proposals/" + p.ProposalID + "/ballots/"
	for _, tc := range []struct {
		name, method, path, ct string
		body                   []byte
		status                 int
		code                   string
	}{
		{"wrong content type", "POST", "/gov/members/proposals:create", "application/json", good, 415, "UnsupportedContentType"},
		{"empty", "POST", "/gov/members/proposals:create", "application/cose", nil, 400, "EmptyBody"},
		{"oversized", "POST", "/gov/members/proposals:create", "application/cose", make([]byte, handlers.DefaultLimits().MaxGovBytes+1), 413, "RequestTooLarge"},
		{"not COSE", "POST", "/gov/members/proposals:create", "application/cose", []byte("{}"), 400, "InvalidCOSE"},
		{"ballot sent as a proposal", "POST", "/gov/members/proposals:create", "application/cose", bBallot, 400, "InvalidHeader"},
		{"bad signature", "POST", "/gov/members/proposals:create", "application/cose", badSig, 401, "InvalidSignature"},
		{"unknown member", "POST", "/gov/members/proposals:create", "application/cose", f.sign(stranger, govreq.MsgProposal, "", good), 401, "UnknownMember"},
		{"invalid proposal", "POST", "/gov/members/proposals:create", "application/cose", f.sign(a, govreq.MsgProposal, "", []byte(`{"actions":[{"name":"nope"}]}`)), 400, "ProposalFailedToValidate"},
		{"ballot under another member's route", "POST", ballotPath + a.ID + ":submit", "application/cose", bBallot, 400, "MemberIdMismatch"},
		{"ballot under another proposal's route", "POST", "/gov/members/proposals/" + strings.Repeat("a", 64) + "/ballots/" + b.ID + ":submit", "application/cose", bBallot, 400, "ProposalIdMismatch"},
		{"ballot on an unknown proposal", "POST", "/gov/members/proposals/" + strings.Repeat("a", 64) + "/ballots/" + b.ID + ":submit", "application/cose", f.sign(b, govreq.MsgBallot, strings.Repeat("a", 64), ballot(true)), 404, "ProposalNotFound"},
		{"withdrawal by another member", "POST", "/gov/members/proposals/" + p.ProposalID + ":withdraw", "application/cose", f.sign(b, govreq.MsgWithdrawal, p.ProposalID, nil), 403, "NotProposer"},
		{"unknown action suffix", "POST", "/gov/members/proposals/" + p.ProposalID + ":frobnicate", "application/cose", good, 404, "ResourceNotFound"},
		{"unknown proposal", "GET", "/gov/members/proposals/" + strings.Repeat("b", 64), "", nil, 404, "ProposalNotFound"},
		{"bad state filter", "GET", "/gov/members/proposals?state=Pondering", "", nil, 400, "InvalidState"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := f.do(tc.method, tc.path, tc.ct, tc.body)
			var eb handlers.ErrorBody
			if json.Unmarshal(body, &eb) != nil || status != tc.status || eb.Error.Code != tc.code {
				t.Fatalf("got %d %s, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
	if after := f.r.Store().Meta(); after.Seqno != before.Seqno {
		for s := before.Seqno + 1; s <= after.Seqno; s++ {
			if rec, _, _ := f.r.Store().Leaf(s); rec.Kind != "signature" {
				t.Fatalf("bad input wrote a %s entry", rec.Kind)
			}
		}
	}
	if got := f.proposal(f.do("GET", "/gov/members/proposals/"+p.ProposalID, "", nil)); got.State != gov.StateOpen || got.BallotCount != 0 {
		t.Fatalf("the proposal changed: %+v", got)
	}
}

func TestGovernanceOverNATS(t *testing.T) {
	f := newGovFixture(t, 1)
	nc := f.natsClient(t)
	m := f.members[0]
	req := func(subject string, body []byte) (string, gov.Proposal) {
		msg, err := nc.Request(subject, body, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var p gov.Proposal
		json.Unmarshal(msg.Data, &p)
		return msg.Header.Get(handlers.StatusHeader), p
	}
	status, p := req(handlers.SubjectGovProposal, f.sign(m, govreq.MsgProposal, "", []byte(`{"actions":[{"name":"remove_node_join_policy","args":{}}]}`)))
	if status != "200" || p.State != gov.StateOpen {
		t.Fatalf("propose over NATS: %s %+v", status, p)
	}
	status, p = req(handlers.SubjectGovBallot, f.sign(m, govreq.MsgBallot, p.ProposalID, ballot(true)))
	if status != "200" || p.State != gov.StateAccepted {
		t.Fatalf("vote over NATS: %s %+v", status, p)
	}
	status, _ = req(handlers.SubjectGovWithdrawal, f.sign(m, govreq.MsgWithdrawal, p.ProposalID, nil))
	if status != "409" {
		t.Fatalf("withdrawing an accepted proposal: %s", status)
	}
	status, _ = req(handlers.SubjectGovProposal, []byte("garbage"))
	if status != "400" {
		t.Fatalf("garbage: %s", status)
	}
}

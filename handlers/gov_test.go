package handlers_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/audit"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/handlers"
)

type govFixture struct {
	*fixture
	members []*govreq.Member
	c       *client.Client
}

func newMember(t testing.TB, alg, name string) (*govreq.Member, []byte) {
	certPEM, keyPEM, err := govreq.Keygen(alg, name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := govreq.LoadMember(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return m, certPEM
}

func newGovFixture(t testing.TB, n int) *govFixture {
	var initial []gov.InitialMember
	var members []*govreq.Member
	for i := range n {
		m, certPEM := newMember(t, []string{"ES256", "ES384", "EdDSA"}[i%3], "m"+strconv.Itoa(i))
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
	conf := newConformance(t, handlers.NewHTTP(r, handlers.DefaultLimits(), logger))
	srv := serveEdge(t, conf, handlers.ConnLimits{})
	return &govFixture{fixture: &fixture{t: t, r: r, url: srv.URL, conf: conf}, members: members, c: client.New(srv.URL)}
}

func (f *govFixture) sign(m *govreq.Member, typ govreq.MsgType, proposalID string, payload []byte) []byte {
	env, err := m.Sign(typ, proposalID, time.Now(), payload)
	if err != nil {
		f.t.Fatal(err)
	}
	return env
}

// gov is a /gov/ path with CCF's api-version.
func gov_(path string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "api-version=" + handlers.APIVersion
}

func ballot(yes bool) []byte {
	b, _ := json.Marshal(map[string]string{"ballot": "export function vote() { return " + strconv.FormatBool(yes) + "; }"})
	return b
}

// still fails unless the ledger holds nothing new but signature entries
// since before.
func (f *govFixture) still(before uint64) {
	f.t.Helper()
	for s := before + 1; s <= f.r.Store().Meta().Seqno; s++ {
		if rec, _, _ := f.r.Store().Leaf(s); rec.Kind != engine.KindSignature {
			f.t.Fatalf("bad input wrote a %s entry at %d", rec.Kind, s)
		}
	}
}

// auditLedger replays the replica's whole log with the auditor.
func (f *govFixture) auditLedger() audit.Summary {
	f.t.Helper()
	js, err := jetstream.New(f.r.SequencerConn())
	if err != nil {
		f.t.Fatal(err)
	}
	rp := audit.NewReplayer(nil)
	if err := natslog.NewReader(js).Range(context.Background(), 1, rp.Add); err != nil {
		f.t.Fatalf("audit: %v", err)
	}
	return rp.Summary()
}

func code(err error) string { return engine.AsError(err).Code }

func TestGovernanceOverHTTP(t *testing.T) {
	f := newGovFixture(t, 3)
	ctx := context.Background()
	a, b, c := f.members[0], f.members[1], f.members[2]
	body := []byte(`{"actions":[{"name":"set_service_configuration","args":{"max_open_proposals":7}}]}`)
	env := f.sign(a, govreq.MsgProposal, "", body)
	ans, err := f.c.Submit(ctx, "/gov/members/proposals:create", env)
	if err != nil {
		t.Fatal(err)
	}
	var p gov.Proposal
	json.Unmarshal(ans.Body, &p)
	if p.State != gov.StateOpen || p.ProposerID != a.ID || p.ProposalID != govreq.ProposalID(env) || p.BallotSubmitters == nil {
		t.Fatalf("created %s", ans.Body)
	}
	// The answer names the entry it wrote.
	if rec, ok, _ := f.r.Store().Leaf(ans.TxID.Seqno); !ok || rec.Kind != engine.KindGovProposal || rec.View != ans.TxID.View {
		t.Fatalf("x-ms-ccf-transaction-id %s is not the proposal's entry", ans.TxID)
	}
	if st, err := f.c.TransactionStatus(ctx, ans.TxID.String()); err != nil || st != "Committed" {
		t.Fatalf("status of %s: %s %v", ans.TxID, st, err)
	}
	// The same envelope again: the first answer, no new entry (gavel's
	// idempotent resubmission).
	before := f.r.Store().Meta().Seqno
	again, err := f.c.Submit(ctx, "/gov/members/proposals:create", env)
	if err != nil || string(again.Body) != string(ans.Body) {
		t.Fatalf("replay answered %s %v", again.Body, err)
	}
	f.still(before)
	p1, _, err := f.c.Vote(ctx, b, p.ProposalID, client.AcceptBallot)
	if err != nil || p1.State != gov.StateOpen || p1.BallotCount != 1 || len(p1.BallotSubmitters) != 1 {
		t.Fatalf("after one ballot %+v %v", p1, err)
	}
	// CCF: the same ballot again is answered as is; another is refused.
	if same, _, err := f.c.Vote(ctx, b, p.ProposalID, client.AcceptBallot); err != nil || same.BallotCount != 1 {
		t.Fatalf("same ballot again %+v %v", same, err)
	}
	if _, _, err := f.c.Vote(ctx, b, p.ProposalID, client.RejectBallot); code(err) != "VoteAlreadyExists" || engine.KindOf(err) != engine.KindInvalid {
		t.Fatalf("another ballot: %v", err)
	}
	p2, _, err := f.c.Vote(ctx, c, p.ProposalID, client.AcceptBallot)
	if err != nil || p2.State != gov.StateAccepted || !p2.FinalVotes[b.ID] || !p2.FinalVotes[c.ID] {
		t.Fatalf("after two ballots %+v %v", p2, err)
	}
	if _, _, err := f.c.Vote(ctx, a, p.ProposalID, client.AcceptBallot); code(err) != "ProposalNotOpen" || engine.KindOf(err) != engine.KindInvalid {
		t.Fatalf("ballot on an accepted proposal: %v", err)
	}
	if got, err := f.c.Proposal(ctx, p.ProposalID); err != nil || got.State != gov.StateAccepted {
		t.Fatalf("GET %+v %v", got, err)
	}
	if acts, err := f.c.Actions(ctx, p.ProposalID); err != nil || string(acts) != string(body)+"\n" {
		t.Fatalf("actions %q %v", acts, err)
	}
	if src, err := f.c.Ballot(ctx, p.ProposalID, b.ID); err != nil || src != client.AcceptBallot {
		t.Fatalf("ballot %q %v", src, err)
	}
	if _, err := f.c.Ballot(ctx, p.ProposalID, a.ID); code(err) != "VoteNotFound" {
		t.Fatalf("no ballot: %v", err)
	}
	if ps, err := f.c.Proposals(ctx, gov.StateAccepted); err != nil || len(ps) != 1 || ps[0].ProposalID != p.ProposalID {
		t.Fatalf("accepted list %+v %v", ps, err)
	}
	if ps, err := f.c.Proposals(ctx, gov.StateOpen); err != nil || len(ps) != 0 {
		t.Fatalf("open list %+v %v", ps, err)
	}
	info, err := f.c.ServiceInfo(ctx)
	if err != nil || info.Configuration.MaxOpenProposals != 7 || info.Status != "Open" || info.CreationTransactionID == "" {
		t.Fatalf("info %+v %v", info, err)
	}
	ms, err := f.c.Members(ctx)
	if err != nil || len(ms) != 3 {
		t.Fatalf("members %+v %v", ms, err)
	}
	for _, m := range ms {
		if m.Status != "Active" || !strings.Contains(m.Certificate, "BEGIN CERTIFICATE") {
			t.Fatalf("genesis member %+v", m)
		}
	}
	if m, err := f.c.Member(ctx, b.ID); err != nil || m.MemberID != b.ID {
		t.Fatalf("member %+v %v", m, err)
	}
	if src, err := f.c.Constitution(ctx); err != nil || !strings.Contains(src, "export") {
		t.Fatalf("constitution %v", err)
	}
	if app, err := f.c.JSApp(ctx); err != nil || len(app.Endpoints) != 0 {
		t.Fatalf("js app %+v %v", app, err)
	}
	if jp, err := f.c.JoinPolicies(ctx); err != nil || len(jp.SNP.HostData) != 0 {
		t.Fatalf("join policy %+v %v", jp, err)
	}
	if tx, err := f.c.Commit(ctx); err != nil || tx == "" {
		t.Fatalf("commit %q %v", tx, err)
	}
	if status, _, schema := f.do("GET", "/schemas/answers/Proposal.json", "", nil); status != 200 || !strings.Contains(string(schema), "ccf.json") {
		t.Fatalf("schema %d %s", status, schema)
	}

	// Withdrawals, as CCF answers them: by the proposer while Open; again
	// (a new envelope) answered as is; of an unknown proposal no content;
	// by another member 403; of an accepted proposal 400.
	w0, _, err := f.c.Propose(ctx, b, []byte(`{"actions":[{"name":"remove_node_join_policy","args":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.c.Withdraw(ctx, a, w0.ProposalID); code(err) != "AuthorizationFailed" || engine.KindOf(err) != engine.KindForbidden {
		t.Fatalf("withdrawal by another member: %v", err)
	}
	if w, _, err := f.c.Withdraw(ctx, b, w0.ProposalID); err != nil || w.State != gov.StateWithdrawn {
		t.Fatalf("withdrawn %+v %v", w, err)
	}
	before = f.r.Store().Meta().Seqno
	// A withdrawal created a second later is a new envelope, not a replay.
	later, err := b.Sign(govreq.MsgWithdrawal, w0.ProposalID, time.Now().Add(time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	if w, err := f.c.Submit(ctx, "/gov/members/proposals/"+w0.ProposalID+":withdraw", later); err != nil || !strings.Contains(string(w.Body), `"proposalState":"Withdrawn"`) {
		t.Fatalf("withdrawn again %s %v", w.Body, err)
	}
	if w, _, err := f.c.Withdraw(ctx, b, strings.Repeat("c", 64)); err != nil || w != nil {
		t.Fatalf("withdrawal of an unknown proposal %+v %v", w, err)
	}
	if _, _, err := f.c.Withdraw(ctx, a, p.ProposalID); code(err) != "ProposalNotOpen" {
		t.Fatalf("withdrawal of an accepted proposal: %v", err)
	}
	f.still(before)
	if sum := f.auditLedger(); sum.Governance < 5 {
		t.Fatalf("audit %+v", sum)
	}
	f.conf.covered("answers/Proposal", "answers/PagedProposal", "answers/ProposalActions", "answers/PagedMember",
		"answers/Member", "answers/ServiceInfo", "answers/JsApp", "answers/JoinPolicies", "answers/Transaction",
		"answers/CommittedTransaction", "answers/ErrorResponse", "javascript /constitution", "204")
}

// pemPublicKey is a fresh public key in PEM, as set_member's
// encryption_pub_key.
func pemPublicKey(t *testing.T) string {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// TestMemberActivation: set_member with CCF's arguments adds an Accepted
// member, who may not propose until it acks the state digest.
func TestMemberActivation(t *testing.T) {
	f := newGovFixture(t, 1)
	ctx := context.Background()
	a := f.members[0]
	dave, daveCert := newMember(t, "ES256", "dave")
	args, _ := json.Marshal(map[string]any{"cert": string(daveCert), "encryption_pub_key": pemPublicKey(t),
		"member_data": map[string]any{"name": "dave"}, "recovery_role": "Participant"})
	p, _, err := f.c.Propose(ctx, a, []byte(`{"actions":[{"name":"set_member","args":`+string(args)+`}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if p, _, err = f.c.Vote(ctx, a, p.ProposalID, client.AcceptBallot); err != nil || p.State != gov.StateAccepted {
		t.Fatalf("set_member %+v %v", p, err)
	}
	m, err := f.c.Member(ctx, dave.ID)
	if err != nil || m.Status != gov.MemberAccepted || m.RecoveryRole != "Participant" || !strings.Contains(m.PublicEncryptionKey, "PUBLIC KEY") || string(m.MemberData) != `{"name":"dave"}` {
		t.Fatalf("new member %+v %v", m, err)
	}
	f.waitSigned()
	before := f.r.Store().Meta().Seqno
	refuse := func(name, wantCode string, wantKind engine.Kind, err error) {
		t.Helper()
		if code(err) != wantCode || engine.KindOf(err) != wantKind {
			t.Fatalf("%s: %v, want %s", name, err, wantCode)
		}
	}
	_, _, err = f.c.Propose(ctx, dave, []byte(`{"actions":[{"name":"remove_node_join_policy","args":{}}]}`))
	refuse("an Accepted member proposing", gov.CodeInvalidAuthenticationInfo, engine.KindUnauthorized, err)
	if !strings.Contains(err.Error(), "Signer is not an ACTIVE member") {
		t.Fatalf("message: %v", err)
	}
	_, err = f.c.StateDigest(ctx, dave.ID)
	refuse("a digest before :update", "ResourceNotFound", engine.KindNotFound, err)
	_, err = f.c.AckStateDigest(ctx, dave, []byte(`{"stateDigest":"`+strings.Repeat("0", 64)+`"}`))
	refuse("an ack before :update", "AuthorizationFailed", engine.KindForbidden, err)
	f.still(before)

	d, body, err := f.c.UpdateStateDigest(ctx, dave)
	if err != nil || d.MemberID != dave.ID || len(d.StateDigest) != 64 {
		t.Fatalf("update %+v %v", d, err)
	}
	if got, err := f.c.StateDigest(ctx, dave.ID); err != nil || got != d {
		t.Fatalf("GET digest %+v %v", got, err)
	}
	f.waitSigned()
	before = f.r.Store().Meta().Seqno
	_, err = f.c.AckStateDigest(ctx, dave, []byte(`{"stateDigest":"`+strings.Repeat("0", 64)+`"}`))
	refuse("an ack of the wrong digest", "StateDigestMismatch", engine.KindInvalid, err)
	_, err = f.c.AckStateDigest(ctx, dave, []byte(`{"digest":"x"}`))
	refuse("an ack without stateDigest", "InvalidInput", engine.KindInvalid, err)
	_, err = f.c.Submit(ctx, "/gov/members/state-digests/"+a.ID+":ack", f.sign(dave, govreq.MsgAck, "", body))
	refuse("an ack under another member's route", gov.CodeInvalidAuthenticationInfo, engine.KindInvalid, err)
	_, err = f.c.Submit(ctx, "/gov/members/proposals:create", f.sign(dave, govreq.MsgAck, "", body))
	refuse("an ack sent as a proposal", "InvalidHeader", engine.KindInvalid, err)
	f.still(before)
	if m, _ := f.c.Member(ctx, dave.ID); m.Status != gov.MemberAccepted {
		t.Fatalf("refused acks changed the member: %+v", m)
	}

	tx, err := f.c.AckStateDigest(ctx, dave, body)
	if err != nil {
		t.Fatal(err)
	}
	if rec, ok, _ := f.r.Store().Leaf(tx.Seqno); !ok || rec.Kind != engine.KindGovAck {
		t.Fatalf("the ack's txid %s names a %s entry", tx, rec.Kind)
	}
	if m, _ := f.c.Member(ctx, dave.ID); m.Status != "Active" || m.RecoveryRole != "Participant" {
		t.Fatalf("after ack %+v", m)
	}
	if p, _, err := f.c.Propose(ctx, dave, []byte(`{"actions":[{"name":"remove_node_join_policy","args":{}}]}`)); err != nil || p.ProposerID != dave.ID {
		t.Fatalf("an Active member proposing: %v", err)
	}
	// The auditor re-derives the state-digest and ack entries.
	if sum := f.auditLedger(); sum.Governance < 5 {
		t.Fatalf("audit %+v", sum)
	}
	f.conf.covered("answers/StateDigest", "answers/Member", "answers/ErrorResponse", "204")
}

func TestGovernanceBadInput(t *testing.T) {
	f := newGovFixture(t, 2)
	ctx := context.Background()
	a, b := f.members[0], f.members[1]
	p, _, err := f.c.Propose(ctx, a, []byte(`{"actions":[{"name":"remove_node_join_policy","args":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	f.waitSigned()
	before := f.r.Store().Meta()
	stranger, _ := newMember(t, "ES256", "stranger")
	good := []byte(`{"actions":[{"name":"remove_node_join_policy","args":{}}]}`)
	bBallot := f.sign(b, govreq.MsgBallot, p.ProposalID, ballot(true))
	badSig := f.sign(a, govreq.MsgProposal, "", []byte(`{"actions":[{"name":"remove_node_join_policy","args":{"x":1}}]}`))
	badSig[len(badSig)-3] ^= 1
	ballotPath := "/gov/members/proposals/" + p.ProposalID + "/ballots/"
	create := gov_("/gov/members/proposals:create")
	for _, tc := range []struct {
		name, method, path, ct string
		body                   []byte
		status                 int
		code                   string
	}{
		{"no api-version", "POST", "/gov/members/proposals:create", "application/cose", good, 400, "MissingApiVersionParameter"},
		{"no api-version on a read", "GET", "/gov/service/members", "", nil, 400, "MissingApiVersionParameter"},
		{"unknown api-version", "GET", "/gov/service/members?api-version=2099-01-01", "", nil, 400, "UnsupportedApiVersionValue"},
		{"two api-versions", "GET", "/gov/service/info?api-version=2024-07-01&api-version=2024-07-01", "", nil, 400, "UnsupportedApiVersionValue"},
		{"wrong content type", "POST", create, "application/json", good, 415, "UnsupportedContentType"},
		{"empty", "POST", create, "application/cose", nil, 400, "EmptyBody"},
		{"oversized", "POST", create, "application/cose", make([]byte, handlers.DefaultLimits().MaxGovBytes+1), 413, "RequestTooLarge"},
		{"not COSE", "POST", create, "application/cose", []byte("{}"), 400, "InvalidCOSE"},
		{"ballot sent as a proposal", "POST", create, "application/cose", bBallot, 400, "InvalidHeader"},
		{"bad signature", "POST", create, "application/cose", badSig, 401, "InvalidAuthenticationInfo"},
		{"unknown member", "POST", create, "application/cose", f.sign(stranger, govreq.MsgProposal, "", good), 401, "InvalidAuthenticationInfo"},
		{"invalid proposal", "POST", create, "application/cose", f.sign(a, govreq.MsgProposal, "", []byte(`{"actions":[{"name":"nope"}]}`)), 400, "ProposalFailedToValidate"},
		{"ballot under another member's route", "POST", gov_(ballotPath + a.ID + ":submit"), "application/cose", bBallot, 400, "InvalidResourceName"},
		{"ballot under another proposal's route", "POST", gov_("/gov/members/proposals/" + strings.Repeat("a", 64) + "/ballots/" + b.ID + ":submit"), "application/cose", bBallot, 400, "InvalidResourceName"},
		{"ballot under a malformed member id", "POST", gov_(ballotPath + "xyz:submit"), "application/cose", bBallot, 400, "InvalidResourceName"},
		{"ballot on an unknown proposal", "POST", gov_("/gov/members/proposals/" + strings.Repeat("a", 64) + "/ballots/" + b.ID + ":submit"), "application/cose", f.sign(b, govreq.MsgBallot, strings.Repeat("a", 64), ballot(true)), 404, "ProposalNotFound"},
		{"withdrawal by another member", "POST", gov_("/gov/members/proposals/" + p.ProposalID + ":withdraw"), "application/cose", f.sign(b, govreq.MsgWithdrawal, p.ProposalID, nil), 403, "AuthorizationFailed"},
		{"withdrawal of a malformed id", "POST", gov_("/gov/members/proposals/nothex:withdraw"), "application/cose", good, 400, "InvalidResourceName"},
		{"unknown action suffix", "POST", gov_("/gov/members/proposals/" + p.ProposalID + ":frobnicate"), "application/cose", good, 404, "ResourceNotFound"},
		{"unknown proposal", "GET", gov_("/gov/members/proposals/" + strings.Repeat("b", 64)), "", nil, 404, "ProposalNotFound"},
		{"malformed proposal id", "GET", gov_("/gov/members/proposals/xyz"), "", nil, 400, "InvalidResourceName"},
		{"malformed proposal id in actions", "GET", gov_("/gov/members/proposals/" + strings.Repeat("g", 64) + "/actions"), "", nil, 400, "InvalidResourceName"},
		{"unknown member", "GET", gov_("/gov/service/members/" + stranger.ID), "", nil, 404, "ResourceNotFound"},
		{"malformed member id", "GET", gov_("/gov/service/members/abc"), "", nil, 400, "InvalidResourceName"},
		{"malformed member in state digest", "GET", gov_("/gov/members/state-digests/abc"), "", nil, 400, "InvalidResourceName"},
		{"malformed transaction id", "GET", gov_("/gov/service/transactions/1-2"), "", nil, 400, "InvalidResourceName"},
		{"bad state filter", "GET", gov_("/gov/members/proposals?state=Pondering"), "", nil, 400, "InvalidQueryParameterValue"},
		{"bad page size", "GET", gov_("/gov/members/proposals?maxpagesize=0"), "", nil, 400, "InvalidQueryParameterValue"},
		{"malformed page token", "GET", gov_("/gov/members/proposals?skipToken=%21%21"), "", nil, 400, "InvalidQueryParameterValue"},
		{"forged page token", "GET", gov_("/gov/members/proposals?skipToken=eyJhIjoiIiwidiI6IjEuMSIsIm4iOjEsImMiOiIwMDAwIn0"), "", nil, 400, "InvalidQueryParameterValue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := f.do(tc.method, tc.path, tc.ct, tc.body)
			var eb handlers.ErrorBody
			if json.Unmarshal(body, &eb) != nil || status != tc.status || eb.Error.Code != tc.code || eb.Error.Message == "" {
				t.Fatalf("got %d %s, want %d %s", status, body, tc.status, tc.code)
			}
			if h.Get("x-ms-error-code") != tc.code {
				t.Fatalf("x-ms-error-code %q", h.Get("x-ms-error-code"))
			}
		})
	}
	f.still(before.Seqno)
	if got, err := f.c.Proposal(ctx, p.ProposalID); err != nil || got.State != gov.StateOpen || got.BallotCount != 0 {
		t.Fatalf("the proposal changed: %+v %v", got, err)
	}
}

// TestPaging: lists come in pages linked by nextLink, whose tokens the
// service checks; a stale or foreign token is refused.
func TestPaging(t *testing.T) {
	f := newGovFixture(t, 5)
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		p, _, err := f.c.Propose(ctx, f.members[i], []byte(`{"actions":[{"name":"remove_node_join_policy","args":{}}]}`))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ProposalID)
	}
	paged := client.New(f.url, client.WithPageSize(2))
	all, err := paged.Proposals(ctx, gov.StateOpen)
	if err != nil || len(all) != 5 {
		t.Fatalf("paged proposals %d %v", len(all), err)
	}
	ms, err := paged.Members(ctx)
	if err != nil || len(ms) != 5 {
		t.Fatalf("paged members %d %v", len(ms), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].ProposalID >= all[i].ProposalID {
			t.Fatalf("pages out of order at %d", i)
		}
	}
	first, err := paged.ListPage(ctx, gov_("/gov/members/proposals?state=Open&maxpagesize=2"))
	if err != nil || first.NextLink == "" {
		t.Fatalf("first page %+v %v", first, err)
	}
	second, err := paged.ListPage(ctx, first.NextLink)
	if err != nil || second.NextLink == "" {
		t.Fatalf("second page %+v %v", second, err)
	}
	// A token used under another filter, or altered, is refused.
	link := strings.Replace(first.NextLink, "state=Open", "state=Accepted", 1)
	if _, err := paged.ListPage(ctx, link); code(err) != "InvalidQueryParameterValue" {
		t.Fatalf("token under another filter: %v", err)
	}
	i := strings.Index(first.NextLink, "skipToken=") + len("skipToken=") + 3
	tampered := first.NextLink[:i] + string(first.NextLink[i]^1) + first.NextLink[i+1:]
	if _, err := paged.ListPage(ctx, tampered); code(err) != "InvalidQueryParameterValue" {
		t.Fatalf("tampered token: %v", err)
	}
	// A token from another service is stale here.
	g := newGovFixture(t, 1)
	other := strings.Replace(first.NextLink, f.url, g.url, 1)
	_, err = client.New(g.url).ListPage(ctx, other)
	if code(err) != "InvalidQueryParameterValue" || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("foreign token: %v", err)
	}
	if all[0].ProposalID != min(ids[0], ids[1], ids[2], ids[3], ids[4]) {
		t.Fatalf("first proposal %s", all[0].ProposalID)
	}
	f.conf.covered("answers/PagedProposal", "answers/PagedMember", "answers/Proposal", "answers/ErrorResponse")
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
	if status != "400" {
		t.Fatalf("withdrawing an accepted proposal: %s", status)
	}
	status, _ = req(handlers.SubjectGovProposal, []byte("garbage"))
	if status != "400" {
		t.Fatalf("garbage: %s", status)
	}
}

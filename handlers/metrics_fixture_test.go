package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/handlers"
)

// observed is a real replica (embedded NATS, pebble) served over HTTP with
// the metrics the engine's hooks feed, as gavel serve wires them.
type observed struct {
	t       testing.TB
	r       *replica.Replica
	srv     *httptest.Server
	url     string
	c       *client.Client
	members []*govreq.Member
	alice   *mapNode // Trusted, publishes a NodeInfo, accepts the update
	bob     *mapNode // Trusted, publishes, does not accept
	pending *mapNode // Pending
	iss     *issuer.Issuer
}

// hostile is text a member or a node controls, which every page must show
// escaped and truncated.
const hostile = `<script>window.pwned=1</script><img src=x onerror="window.pwned=2">`

func newObserved(t testing.TB) *observed {
	t.Helper()
	var initial []gov.InitialMember
	var members []*govreq.Member
	for i, name := range []string{"m0", "m1", "m2"} {
		m, certPEM := newMember(t, []string{"ES256", "ES384", "EdDSA"}[i], name)
		members = append(members, m)
		initial = append(initial, gov.InitialMember{CertPEM: certPEM})
	}
	o := &observed{t: t, members: members,
		alice: newMapNode(t, "O=Alice,L=London,C=GB"), bob: newMapNode(t, "O=Bob,L=Paris,C=FR"),
		pending: newMapNode(t, "O=Pending,L=Oslo,C=NO")}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	metrics := handlers.NewMetrics()
	t.Cleanup(constitution.Observe(metrics.ObserveCall))
	seq := fastSignatures()
	seq.OnRound = metrics.ObserveRound
	r, err := replica.Open(context.Background(), replica.Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0",
		Sequencer: seq, Logger: logger, Members: initial,
		Netmap: replica.NetmapConfig{
			Nodes: []engine.NodeRecord{o.alice.record("Trusted"), o.bob.record("Trusted"), o.pending.record("Pending")},
			Tick:  10 * time.Millisecond, MaxAge: 30 * time.Second,
		},
		OnCommit: func(c replica.CommitReport) { metrics.ObserveCommit(c.Kind, c.Took, c.Err) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	h := handlers.NewHTTP(r, handlers.DefaultLimits(), logger)
	h.UseMetrics(metrics)
	o.r, o.srv = r, httptest.NewServer(h)
	t.Cleanup(o.srv.Close)
	o.url, o.c = o.srv.URL, client.New(o.srv.URL)
	if o.iss, err = issuer.New("ES256", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	return o
}

const yesBallot = "export function vote() { return true; }"

// populated is what populate made.
type populated struct {
	statements []string // txids of registered statements
	open       string   // an Open proposal with one ballot and hostile text
	update     string   // the accepted set_network_parameters proposal
	updateHash string   // the pending parameters' hash
}

// populate gives the service the data every observer shows: statements
// with receipts, an open proposal with a ballot, NodeInfos in the map, a
// pending parameters update (deadline an hour away) that alice accepted.
func (o *observed) populate(statements int) populated {
	t, ctx := o.t, context.Background()
	t.Helper()
	var p populated
	for i := range statements {
		st, err := o.iss.Sign("demo", "text/plain", []byte("release "+string(rune('a'+i))), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		tx, err := o.c.RegisterAndWait(ctx, st, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		p.statements = append(p.statements, tx)
	}
	for _, n := range []*mapNode{o.alice, o.bob} {
		if _, err := o.c.PublishNodeInfo(ctx, n.info(t, 1, strings.ToLower(n.name[2:5])+".example:10001")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	update := `{"actions":[{"name":"set_network_parameters","args":{"description":"a notary ` + jsonText(hostile) + `","update_deadline":"` + deadline + `",` +
		`"parameters":{"minimum_platform_version":1,"notaries":[{"identity":"O=Notary,L=London,C=GB","validating":false}],` +
		`"max_message_size":10485760,"max_transaction_size":10485760,"event_horizon":2592000}}}]}`
	prop, _, err := o.c.Propose(ctx, o.members[0], []byte(update))
	for _, m := range o.members[:2] {
		if err == nil {
			prop, _, err = o.c.Vote(ctx, m, prop.ProposalID, yesBallot)
		}
	}
	if err != nil || prop.State != gov.StateAccepted {
		t.Fatalf("update proposal: %+v %v", prop, err)
	}
	p.update = prop.ProposalID
	a, err := o.c.Acceptances(ctx, "")
	if err != nil || a.Hash == "" {
		t.Fatalf("no pending update: %+v %v", a, err)
	}
	p.updateHash = a.Hash
	if _, err := o.c.AckParameters(ctx, o.alice.ack(t, a.Hash)); err != nil {
		t.Fatal(err)
	}
	// A join policy in force.
	policy := `{"actions":[{"name":"set_node_join_policy","args":{"policy":"export function apply(statements) { return \"no: ` + jsonText(jsonText(hostile)) + `\"; }"}}]}`
	prop, _, err = o.c.Propose(ctx, o.members[0], []byte(policy))
	for _, m := range o.members[:2] {
		if err == nil {
			prop, _, err = o.c.Vote(ctx, m, prop.ProposalID, yesBallot)
		}
	}
	if err != nil || prop.State != gov.StateAccepted {
		t.Fatalf("join policy proposal: %+v %v", prop, err)
	}
	// An open proposal with hostile member-controlled text and one ballot.
	long := strings.Repeat("A", 5000)
	open := `{"actions":[{"name":"set_member","args":{"cert":"` + jsonText(pemOf(t)) + `","member_data":{"name":"` + jsonText(hostile) + `","bio":"` + long + `"}}}]}`
	prop, _, err = o.c.Propose(ctx, o.members[1], []byte(open))
	if err == nil {
		prop, _, err = o.c.Vote(ctx, o.members[2], prop.ProposalID, yesBallot)
	}
	if err != nil || prop.State != gov.StateOpen {
		t.Fatalf("open proposal: %+v %v", prop, err)
	}
	p.open = prop.ProposalID
	waitFor(t, "a signed tail", func() bool { m := o.r.Store().Meta(); return m.Seqno == m.LastSignature })
	return p
}

// pemOf is a fresh member certificate.
func pemOf(t testing.TB) string {
	_, certPEM := newMember(t, "ES256", "newcomer")
	return string(certPEM)
}

// jsonText escapes s for a JSON string literal.
func jsonText(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return r.Replace(s)
}

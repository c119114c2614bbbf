package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/handlers"
)

func TestNATSSubmitStatement(t *testing.T) {
	f := newFixture(t, fastSignatures())
	nc := f.natsClient(t)

	request := func(body []byte) (int, []byte) {
		t.Helper()
		m, err := nc.Request(handlers.SubjectStatement, body, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		status, err := strconv.Atoi(m.Header.Get(handlers.StatusHeader))
		if err != nil {
			t.Fatalf("no status header: %v", m.Header)
		}
		return status, m.Data
	}
	status, body := request(f.sign("nats/1", []byte("over nats")))
	var res struct{ TxID string }
	if status != 201 || json.Unmarshal(body, &res) != nil {
		t.Fatalf("register over NATS: %d %s", status, body)
	}
	if _, err := engine.ParseTxID(res.TxID); err != nil {
		t.Fatal(err)
	}
	f.waitCOSE("/receipt?transaction_id=" + res.TxID)

	before := f.r.Store().Meta().Seqno
	for _, tc := range []struct {
		body   []byte
		status int
		code   string
	}{
		{[]byte("not cose"), 400, "InvalidStatement"},
		{nil, 400, "EmptyBody"},
		{make([]byte, handlers.DefaultLimits().MaxStatementBytes+1), 413, "RequestTooLarge"},
	} {
		status, body := request(tc.body)
		var eb handlers.ErrorBody
		if status != tc.status || json.Unmarshal(body, &eb) != nil || eb.Error.Code != tc.code {
			t.Fatalf("got %d %s, want %d %s", status, body, tc.status, tc.code)
		}
	}
	// The client user may not write the ledger itself.
	if _, err := nc.Request("gavel.ledger.statement", []byte("forged"), time.Second); err == nil {
		t.Fatal("client published to the ledger")
	}
	for s := before + 1; s <= f.r.Store().Meta().Seqno; s++ {
		if rec, _, _ := f.r.Store().Leaf(s); rec.Kind != engine.KindSignature {
			t.Fatalf("a rejected request wrote a %s entry", rec.Kind)
		}
	}
}

// connect opens a NATS connection as client kind u from the files gavel
// serve writes (seed and info), as any client would.
func (f *fixture) connect(t testing.TB, u natslog.User, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opt, err := natslog.ConnectOptions(f.r.ClientCredsFile(u))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(f.r.NATSURL(), append([]nats.Option{opt}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// serveNATS serves svc over the replica's handler connection.
func (f *fixture) serveNATS(t testing.TB, svc handlers.Service, cfg handlers.NATSConfig) *handlers.NATS {
	t.Helper()
	srv, err := handlers.ServeNATS(f.r.HandlerConn(), svc, handlers.DefaultLimits(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// statementsSince counts the statement entries after seqno before.
func (f *fixture) statementsSince(t testing.TB, before uint64) int {
	t.Helper()
	n := 0
	for seq := before + 1; seq <= f.r.Store().Meta().Seqno; seq++ {
		rec, ok, err := f.r.Store().Leaf(seq)
		if err != nil || !ok {
			t.Fatalf("leaf %d: %v %v", seq, ok, err)
		}
		if rec.Kind == engine.KindStatement {
			n++
		}
	}
	return n
}

// send publishes a request with its own reply inbox, in order with the
// connection's other publishes; answer reads the reply.
func send(t testing.TB, nc *nats.Conn, subject string, body []byte) *nats.Subscription {
	t.Helper()
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest(subject, inbox, body); err != nil {
		t.Fatal(err)
	}
	return sub
}

func answer(t testing.TB, sub *nats.Subscription) (int, string) {
	t.Helper()
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	status, _ := strconv.Atoi(m.Header.Get(handlers.StatusHeader))
	var eb handlers.ErrorBody
	_ = json.Unmarshal(m.Data, &eb)
	return status, eb.Error.Code
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestNATSReplyInjection: requests whose reply subject is not an inbox of
// a kind that may send them are dropped unexecuted and counted; nothing
// lands in the ledger, which keeps working.
func TestNATSReplyInjection(t *testing.T) {
	f := newFixture(t, fastSignatures())
	srv := f.serveNATS(t, f.r, handlers.DefaultNATSConfig(100, handlers.DefaultLimits()))
	member := f.connect(t, natslog.UserMember)
	node := f.connect(t, natslog.UserNode)
	f.waitSigned()
	before := f.r.Store().Meta().Seqno
	injected := f.sign("inject/1", []byte("would be committed for nobody"))
	bad := []struct{ subject, reply string }{
		{handlers.SubjectStatement, "gavel.ledger.statement"},
		{handlers.SubjectStatement, "gavel.ledger.gov"},
		{handlers.SubjectStatement, "gavel.feed.params"},
		{handlers.SubjectStatement, "$JS.API.STREAM.DELETE.GAVEL_LEDGER"},
		{handlers.SubjectStatement, "_INBOX.auditor.abc"},
		{handlers.SubjectStatement, "_INBOX.sequencer.abc"},
		{handlers.SubjectStatement, "_INBOX.member"},
		{handlers.SubjectStatement, "_INBOX.memberx.abc"},
		{handlers.SubjectStatement, ""},
		{handlers.SubjectGovProposal, "_INBOX.node.abc"}, // a node's inbox on a member-only subject
		{handlers.SubjectGovBallot, "gavel.ledger.gov"},
	}
	for _, b := range bad {
		if err := member.PublishMsg(&nats.Msg{Subject: b.subject, Reply: b.reply, Data: injected}); err != nil {
			t.Fatal(err)
		}
	}
	// Answered requests after them on each subject: the handler takes a
	// connection's messages on one subject in order, so by their answers the
	// injections have been judged.
	if status, code := answer(t, send(t, member, handlers.SubjectStatement, f.sign("inject/good", []byte("ok")))); status != 201 {
		t.Fatalf("statement after the injections: %d %s", status, code)
	}
	for _, subject := range []string{handlers.SubjectGovProposal, handlers.SubjectGovBallot} {
		if status, code := answer(t, send(t, member, subject, []byte("not cose"))); status != 400 {
			t.Fatalf("%s after the injections: %d %s", subject, status, code)
		}
	}
	// A node's inbox is fine for statements.
	if status, code := answer(t, send(t, node, handlers.SubjectStatement, f.sign("inject/node", []byte("ok")))); status != 201 {
		t.Fatalf("node statement: %d %s", status, code)
	}
	if got := srv.Stats().RepliesRefused; got != uint64(len(bad)) {
		t.Fatalf("replies refused %d, want %d", got, len(bad))
	}
	if n := f.statementsSince(t, before); n != 2 {
		t.Fatalf("%d statement entries, want the 2 answered ones", n)
	}
	// Every message in the stream is a gavel entry, and writes still work.
	js, err := jetstream.New(f.r.SequencerConn())
	if err != nil {
		t.Fatal(err)
	}
	err = natslog.NewReader(js).Range(context.Background(), 1, func(m engine.LedgerMsg) error {
		if _, err := engine.DecodeEntry(m.Data); err != nil {
			t.Errorf("ledger message %d on %s is not an entry: %v", m.Seq, m.Subject, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.waitCOSE("/receipt?transaction_id=" + f.register(f.sign("inject/after", []byte("still writing"))))
}

// gatedService holds each statement registration until released: a
// fault-injecting wrapper around the real replica.
type gatedService struct {
	*replica.Replica
	entered, release chan struct{}
	stop             chan struct{} // closed when the test ends: nothing waits then
}

func (g *gatedService) RegisterStatement(ctx context.Context, b []byte) ([]byte, error) {
	select {
	case g.entered <- struct{}{}:
	case <-g.stop:
		return nil, context.Canceled
	}
	select {
	case <-g.release:
	case <-g.stop:
		return nil, context.Canceled
	}
	return g.Replica.RegisterStatement(ctx, b)
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestNATSIntakeBounds: with one slot and one queue place, a third request
// is answered Busy at once; a request that waited past MaxWait is refused
// RequestExpired, and one whose requester went away is dropped; neither
// is committed.
func TestNATSIntakeBounds(t *testing.T) {
	f := newFixture(t, fastSignatures())
	g := &gatedService{Replica: f.r, entered: make(chan struct{}), release: make(chan struct{}), stop: make(chan struct{})}
	clock := &fakeClock{t: time.Now()}
	srv := f.serveNATS(t, g, handlers.NATSConfig{InFlight: 1, MaxQueued: 1, MaxHeldBytes: 8 << 20, MaxWait: time.Second,
		HasInterest: f.r.HasInterest, Now: clock.Now})
	t.Cleanup(func() { close(g.stop) }) // runs before srv.Stop
	member := f.connect(t, natslog.UserMember)
	before := f.r.Store().Meta().Seqno

	a := send(t, member, handlers.SubjectStatement, f.sign("intake/a", []byte("a")))
	<-g.entered // a holds the slot
	b := send(t, member, handlers.SubjectStatement, f.sign("intake/b", []byte("b")))
	c := send(t, member, handlers.SubjectStatement, f.sign("intake/c", []byte("c")))
	if status, code := answer(t, c); status != 503 || code != "Busy" {
		t.Fatalf("c: %d %s, want 503 Busy", status, code)
	}
	clock.Advance(2 * time.Second) // b has now waited too long
	g.release <- struct{}{}
	if status, code := answer(t, a); status != 201 {
		t.Fatalf("a: %d %s", status, code)
	}
	if status, code := answer(t, b); status != 503 || code != "RequestExpired" {
		t.Fatalf("b: %d %s, want 503 RequestExpired", status, code)
	}

	d := send(t, member, handlers.SubjectStatement, f.sign("intake/d", []byte("d")))
	<-g.entered // d holds the slot
	gone := f.connect(t, natslog.UserMember)
	e := send(t, gone, handlers.SubjectStatement, f.sign("intake/e", []byte("e")))
	if err := gone.Flush(); err != nil {
		t.Fatal(err)
	}
	gone.Close()
	waitUntil(t, "the server to forget e's requester", func() bool { return !f.r.HasInterest(e.Subject) })
	g.release <- struct{}{}
	if status, code := answer(t, d); status != 201 {
		t.Fatalf("d: %d %s", status, code)
	}
	waitUntil(t, "e to be dropped", func() bool { return srv.Stats().Abandoned == 1 })

	st := srv.Stats()
	if st.Busy != 1 || st.Expired != 1 || st.Abandoned != 1 || st.RepliesRefused != 0 {
		t.Fatalf("stats %+v", st)
	}
	if n := f.statementsSince(t, before); n != 2 {
		t.Fatalf("%d statement entries, want a and d only", n)
	}
}

func TestReplyAllowed(t *testing.T) {
	for _, tc := range []struct {
		subject, reply string
		ok             bool
	}{
		{handlers.SubjectStatement, "_INBOX.member.abc", true},
		{handlers.SubjectStatement, "_INBOX.member.abc.7", true},
		{handlers.SubjectStatement, "_INBOX.node.abc", true},
		{handlers.SubjectGovProposal, "_INBOX.member.abc", true},
		{handlers.SubjectGovWithdrawal, "_INBOX.member.abc", true},
		{handlers.SubjectGovBallot, "_INBOX.node.abc", false},
		{handlers.SubjectStatement, "_INBOX.auditor.abc", false},
		{handlers.SubjectStatement, "_INBOX.member", false},
		{handlers.SubjectStatement, "_INBOX.member.", false},
		{handlers.SubjectStatement, "_INBOX.member..x", false},
		{handlers.SubjectStatement, "_INBOX.member.*", false},
		{handlers.SubjectStatement, "_INBOX.member.>", false},
		{handlers.SubjectStatement, "_INBOX.member.a b", false},
		{handlers.SubjectStatement, "_INBOX.memberx.abc", false},
		{handlers.SubjectStatement, "gavel.ledger.statement", false},
		{handlers.SubjectStatement, "$JS.API.STREAM.DELETE.GAVEL_LEDGER", false},
		{handlers.SubjectStatement, "", false},
		{"gavel.submit.unknown", "_INBOX.member.abc", false},
	} {
		if got := handlers.ReplyAllowed(tc.subject, tc.reply); got != tc.ok {
			t.Errorf("ReplyAllowed(%q, %q) = %v, want %v", tc.subject, tc.reply, got, tc.ok)
		}
	}
}

// FuzzReplyAllowed: whatever the reply subject, an allowed one lies
// strictly inside the member's or the node's inbox and is a plain subject.
func FuzzReplyAllowed(f *testing.F) {
	f.Add(handlers.SubjectStatement, "_INBOX.member.abc")
	f.Add(handlers.SubjectGovBallot, "_INBOX.node.abc")
	f.Add(handlers.SubjectStatement, "gavel.ledger.statement")
	f.Fuzz(func(t *testing.T, subject, reply string) {
		if !handlers.ReplyAllowed(subject, reply) {
			return
		}
		inside := strings.HasPrefix(reply, "_INBOX.member.") || strings.HasPrefix(reply, "_INBOX.node.")
		if !inside || strings.ContainsAny(reply, "*> ") || strings.HasSuffix(reply, ".") || strings.Contains(reply, "..") {
			t.Fatalf("ReplyAllowed(%q, %q)", subject, reply)
		}
		if strings.HasPrefix(subject, "gavel.submit.gov.") && !strings.HasPrefix(reply, "_INBOX.member.") {
			t.Fatalf("a governance answer into %q", reply)
		}
	})
}

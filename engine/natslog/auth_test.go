package natslog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/natslog/natstest"
)

// violations collects the permission errors the server sends a connection.
type violations struct {
	mu      sync.Mutex
	seen    []string
	changed chan struct{} // closed and replaced on every new violation
}

func newViolations() *violations { return &violations{changed: make(chan struct{})} }

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		v.mu.Lock()
		v.seen = append(v.seen, err.Error())
		close(v.changed)
		v.changed = make(chan struct{})
		v.mu.Unlock()
	}
}

// matching counts the violations naming subject (or a subject it is a
// prefix of, for generated consumer names).
func (v *violations) matching(subject string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, s := range v.seen {
		if strings.Contains(s, `"`+subject) {
			n++
		}
	}
	return n
}

// waitFor waits until a violation naming subject arrives.
func (v *violations) waitFor(t *testing.T, subject string) { t.Helper(); v.waitForMore(t, subject, 0) }

// waitForMore waits until more than before violations name subject: a new
// one, when an earlier operation was refused on the same subject.
func (v *violations) waitForMore(t *testing.T, subject string, before int) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		v.mu.Lock()
		changed := v.changed
		v.mu.Unlock()
		if v.matching(subject) > before {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no new permissions violation for %s (seen %q)", subject, v.seen)
		}
	}
}

// authFixture is one server with a ledger of 20 entries, a feed value, a
// responder on the submit subjects (as the handler user) and one
// connection per user, each recording its permission violations.
type authFixture struct {
	c      *natstest.Cluster
	ledger []natslog.Msg
	conns  map[natslog.User]*nats.Conn
	denied map[natslog.User]*violations
}

func newAuthFixture(t *testing.T) *authFixture {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	f := &authFixture{c: c, ledger: batchOf("auth", 20), conns: map[natslog.User]*nats.Conn{}, denied: map[natslog.User]*violations{}}
	for _, u := range []natslog.User{natslog.UserSequencer, natslog.UserFeeds, natslog.UserHandler, natslog.UserReplica, natslog.UserMember, natslog.UserNode, natslog.UserAuditor} {
		v := newViolations()
		f.denied[u] = v
		if u.IsClient() {
			f.conns[u] = c.ConnectClient(0, u, nats.ErrorHandler(v.handler))
		} else {
			f.conns[u] = c.ConnectService(0, u, nats.ErrorHandler(v.handler))
		}
	}
	if _, err := newPublisher(t, f.conns[natslog.UserSequencer]).PublishBatch(ctx, f.ledger, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.JetStream(f.conns[natslog.UserFeeds]).Publish(ctx, "gavel.feed.params", []byte("params-1"), jetstream.WithMsgID("1.21")); err != nil {
		t.Fatal(err)
	}
	handler := f.conns[natslog.UserHandler]
	sub, err := handler.QueueSubscribe(natslog.SubmitSubjects, "gavel-replicas", func(m *nats.Msg) { _ = m.Respond(append([]byte("ok:"), m.Data...)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := handler.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// clientOp is one operation a client may try: subject is what the server
// names when it refuses it.
type clientOp struct {
	name    string
	subject string
	allowed []natslog.User
	do      func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error
}

func submit(subject string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
	return func(ctx context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
		m, err := nc.RequestWithContext(ctx, subject, []byte("x"))
		if err == nil && string(m.Data) != "ok:x" {
			err = fmt.Errorf("answer %q", m.Data)
		}
		return err
	}
}

func subscribe(subject string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
	return func(_ context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
		sub, err := nc.Subscribe(subject, func(*nats.Msg) {})
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		return nc.Flush()
	}
}

func publish(subject string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
	return func(_ context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
		if err := nc.Publish(subject, []byte("forged")); err != nil {
			return err
		}
		return nc.Flush()
	}
}

func readOrdered(stream, want string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
	return func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
		cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return err
		}
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err == nil && string(msg.Data()) != want {
			err = fmt.Errorf("first message %q, want %q", msg.Data(), want)
		}
		return err
	}
}

func withStream(stream string, fn func(context.Context, jetstream.Stream) error) func(context.Context, *nats.Conn, jetstream.JetStream) error {
	return func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		return fn(ctx, s)
	}
}

// apiRequest sends a raw JetStream API request: the subject forms a
// client library might not offer (legacy durable create, deletes).
func apiRequest(subject string, body any) func(context.Context, *nats.Conn, jetstream.JetStream) error {
	return func(ctx context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
		b, _ := json.Marshal(body)
		m, err := nc.RequestWithContext(ctx, subject, b)
		if err != nil {
			return err
		}
		var resp struct {
			Error *struct{ Description string } `json:"error"`
		}
		if err := json.Unmarshal(m.Data, &resp); err != nil || resp.Error != nil {
			return fmt.Errorf("api answer %s", m.Data)
		}
		return nil
	}
}

var (
	member  = natslog.UserMember
	node    = natslog.UserNode
	auditor = natslog.UserAuditor
)

// clientOps is every operation of the client kinds, with who may do it.
func clientOps() []clientOp {
	const (
		ledger = natslog.LedgerStream
		feeds  = natslog.FeedsStream
	)
	durable := map[string]any{"stream_name": ledger, "config": map[string]any{"durable_name": "keep", "ack_policy": "none"}}
	return []clientOp{
		{"submit proposal", "gavel.submit.gov.proposal", []natslog.User{member}, submit("gavel.submit.gov.proposal")},
		{"submit statement", "gavel.submit.statement", []natslog.User{member, node}, submit("gavel.submit.statement")},
		{"submit node join", "gavel.submit.node.join", []natslog.User{node}, submit("gavel.submit.node.join")},
		{"publish ledger", "gavel.ledger.statement", nil, publish("gavel.ledger.statement")},
		{"publish feed", "gavel.feed.params", nil, publish("gavel.feed.params")},
		{"forge a forwarded write", "gavel.replica.forward.x", nil, publish("gavel.replica.forward.x")},
		{"take the lease", "$KV.GAVEL_LEASE.primary", nil, publish("$KV.GAVEL_LEASE.primary")},
		{"publish into a member inbox", "_INBOX.member.forged", nil, publish("_INBOX.member.forged")},
		{"js publish ledger", "gavel.ledger.gov", nil, func(ctx context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
			p, err := natslog.NewPublisher(nc)
			if err == nil {
				_, err = p.PublishOne(ctx, "gavel.ledger.gov", []byte("forged"), 20)
			}
			return err
		}},
		{"atomic batch", "gavel.ledger.statement", nil, func(ctx context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
			p, err := natslog.NewPublisher(nc)
			if err == nil {
				_, err = p.PublishBatch(ctx, batchOf("forged", 3), 20)
			}
			return err
		}},
		{"ledger info", "$JS.API.STREAM.INFO." + ledger, []natslog.User{auditor}, withStream(ledger, func(context.Context, jetstream.Stream) error { return nil })},
		{"ledger direct get", "$JS.API.DIRECT.GET." + ledger, []natslog.User{auditor}, func(ctx context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
			m, err := nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+ledger, []byte(`{"seq":7}`))
			if err == nil && string(m.Data) != "auth/6" {
				err = fmt.Errorf("entry 7 %q", m.Data)
			}
			return err
		}},
		{"ledger range", "$JS.API.STREAM.INFO." + ledger, []natslog.User{auditor}, func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
			var got []string
			err := natslog.NewReader(js).Range(ctx, 1, func(m engine.LedgerMsg) error { got = append(got, string(m.Data)); return nil })
			if err == nil && len(got) != 20 {
				err = fmt.Errorf("read %d entries", len(got))
			}
			return err
		}},
		{"ledger ordered consumer", "$JS.API.CONSUMER.CREATE." + ledger, []natslog.User{auditor}, func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
			var got []uint64
			followCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			err := natslog.NewReader(js).Follow(followCtx, 19, func(m engine.LedgerMsg) error {
				if got = append(got, m.Seq); m.Seq == 20 {
					cancel()
				}
				return nil
			})
			if !slices.Equal(got, []uint64{19, 20}) {
				return fmt.Errorf("followed %v: %v", got, err)
			}
			return nil
		}},
		{"feeds ordered consumer", "$JS.API.CONSUMER.CREATE." + feeds, []natslog.User{node}, func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			// Without stream info first: the create itself is what is refused.
			cons, err := js.CreateConsumer(ctx, feeds, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute})
			if err != nil {
				return err
			}
			msg, err := cons.Next(jetstream.FetchContext(ctx))
			if err == nil && string(msg.Data()) != "params-1" {
				err = fmt.Errorf("feed %q", msg.Data())
			}
			return err
		}},
		{"last feed value", "$JS.API.DIRECT.GET." + feeds + ".gavel.feed.params", []natslog.User{node, auditor}, func(ctx context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
			m, err := nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+feeds+".gavel.feed.params", nil)
			if err == nil && string(m.Data) != "params-1" {
				err = fmt.Errorf("params %q", m.Data)
			}
			return err
		}},
		{"legacy durable create", "$JS.API.CONSUMER.DURABLE.CREATE." + ledger + ".keep", nil, apiRequest("$JS.API.CONSUMER.DURABLE.CREATE."+ledger+".keep", durable)},
		{"consumer delete", "$JS.API.CONSUMER.DELETE." + ledger + ".victim", nil, apiRequest("$JS.API.CONSUMER.DELETE."+ledger+".victim", nil)},
		{"feeds consumer delete", "$JS.API.CONSUMER.DELETE." + feeds + ".victim", nil, apiRequest("$JS.API.CONSUMER.DELETE."+feeds+".victim", nil)},
		{"consumer pause", "$JS.API.CONSUMER.PAUSE." + ledger + ".victim", nil, apiRequest("$JS.API.CONSUMER.PAUSE."+ledger+".victim", map[string]any{})},
		{"delete message", "$JS.API.STREAM.MSG.DELETE." + ledger, nil, apiRequest("$JS.API.STREAM.MSG.DELETE."+ledger, map[string]any{"seq": 1})},
		{"purge", "$JS.API.STREAM.PURGE." + ledger, nil, apiRequest("$JS.API.STREAM.PURGE."+ledger, map[string]any{})},
		{"purge feeds", "$JS.API.STREAM.PURGE." + feeds, nil, apiRequest("$JS.API.STREAM.PURGE."+feeds, map[string]any{})},
		{"delete stream", "$JS.API.STREAM.DELETE." + ledger, nil, apiRequest("$JS.API.STREAM.DELETE."+ledger, nil)},
		{"update stream", "$JS.API.STREAM.UPDATE." + ledger, nil, func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
			cfg := natslog.LedgerStreamConfig(1)
			cfg.DenyDelete = false
			_, err := js.UpdateStream(ctx, cfg)
			return err
		}},
		{"create stream", "$JS.API.STREAM.CREATE.EVIL", nil, func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
			_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}})
			return err
		}},
		{"subscribe _INBOX.>", "_INBOX.>", nil, subscribe("_INBOX.>")},
		{"subscribe member inbox", "_INBOX.member.>", []natslog.User{member}, subscribe("_INBOX.member.>")},
		{"subscribe node inbox", "_INBOX.node.*", []natslog.User{node}, subscribe("_INBOX.node.*")},
		{"subscribe auditor inbox", "_INBOX.auditor.x", []natslog.User{auditor}, subscribe("_INBOX.auditor.x")},
		{"subscribe handler inbox", "_INBOX.handler.>", nil, subscribe("_INBOX.handler.>")},
		{"subscribe ledger", "gavel.ledger.>", nil, subscribe("gavel.ledger.>")},
		{"subscribe feeds", "gavel.feed.>", nil, subscribe("gavel.feed.>")},
		{"steal submissions", "gavel.submit.statement", nil, func(_ context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
			sub, err := nc.QueueSubscribe("gavel.submit.statement", "gavel-replicas", func(*nats.Msg) {})
			if err != nil {
				return err
			}
			defer sub.Unsubscribe()
			return nc.Flush()
		}},
	}
}

// TestClientPermissions runs every operation as every client kind against
// a real server: the allowed ones work, the denied ones are refused by
// the server's permissions (which says so), and afterwards the ledger and
// its settings are as they were.
func TestClientPermissions(t *testing.T) {
	f := newAuthFixture(t)
	ctx := testContext(t)
	// A consumer to try to delete, pause or steal.
	if _, err := f.c.JetStream(f.conns[auditor]).CreateConsumer(ctx, natslog.LedgerStream, jetstream.ConsumerConfig{Name: "victim", AckPolicy: jetstream.AckNonePolicy}); err != nil {
		t.Fatal(err)
	}
	for _, u := range natslog.ClientKinds {
		nc, js := f.conns[u], f.c.JetStream(f.conns[u])
		t.Run(string(u), func(t *testing.T) {
			for _, op := range clientOps() {
				t.Run(op.name, func(t *testing.T) {
					opCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
					defer cancel()
					if slices.Contains(op.allowed, u) {
						if err := op.do(opCtx, nc, js); err != nil {
							t.Fatalf("%s may %s, got %v", u, op.name, err)
						}
						return
					}
					// A refused request is never answered: the server's
					// violation says it was refused, then the call is ended.
					before := f.denied[u].matching(op.subject)
					done := make(chan struct{})
					go func() { _ = op.do(opCtx, nc, js); close(done) }()
					f.denied[u].waitForMore(t, op.subject, before)
					cancel()
					<-done
				})
			}
		})
	}

	// Nothing changed: the entries, the settings, the victim consumer.
	js := f.c.JetStream(f.conns[natslog.UserSequencer])
	checkLedger(t, ctx, natslog.NewReader(js), f.ledger)
	info, err := js.Stream(ctx, natslog.LedgerStream)
	if err != nil || !info.CachedInfo().Config.DenyDelete {
		t.Fatalf("ledger stream after attacks: %v", err)
	}
	if _, err := js.Stream(ctx, "EVIL"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream EVIL: %v", err)
	}
	// (The sequencer may not look at consumers: the auditor looks.)
	auditorJS := f.c.JetStream(f.conns[auditor])
	if _, err := auditorJS.Consumer(ctx, natslog.LedgerStream, "victim"); err != nil {
		t.Fatalf("victim consumer: %v", err)
	}
	if _, err := auditorJS.Consumer(ctx, natslog.LedgerStream, "keep"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("durable keep: %v", err)
	}
}

// TestServiceUserPermissions: each of the replica's connections can do its
// own job and nothing of the others'.
func TestServiceUserPermissions(t *testing.T) {
	f := newAuthFixture(t)
	ctx := testContext(t)
	for _, tc := range []struct {
		user    natslog.User
		subject string
		do      func(context.Context, *nats.Conn, jetstream.JetStream) error
	}{
		{natslog.UserSequencer, "gavel.feed.params", publish("gavel.feed.params")},
		{natslog.UserSequencer, "gavel.submit.>", subscribe("gavel.submit.>")},
		{natslog.UserSequencer, "_INBOX.member.x", publish("_INBOX.member.x")},
		{natslog.UserSequencer, "$JS.API.CONSUMER.CREATE." + natslog.LedgerStream, readOrdered(natslog.LedgerStream, "auth/0")},
		{natslog.UserFeeds, "gavel.ledger.statement", publish("gavel.ledger.statement")},
		{natslog.UserFeeds, "gavel.submit.>", subscribe("gavel.submit.>")},
		{natslog.UserFeeds, "$JS.API.STREAM.PURGE." + natslog.FeedsStream, apiRequest("$JS.API.STREAM.PURGE."+natslog.FeedsStream, map[string]any{})},
		{natslog.UserReplica, "gavel.ledger.statement", publish("gavel.ledger.statement")},
		{natslog.UserReplica, "gavel.feed.map", publish("gavel.feed.map")},
		{natslog.UserReplica, "gavel.submit.>", subscribe("gavel.submit.>")},
		{natslog.UserReplica, "$JS.API.STREAM.PURGE." + natslog.LedgerStream, apiRequest("$JS.API.STREAM.PURGE."+natslog.LedgerStream, map[string]any{})},
		{natslog.UserHandler, "gavel.ledger.statement", publish("gavel.ledger.statement")},
		{natslog.UserHandler, "gavel.feed.map", publish("gavel.feed.map")},
		{natslog.UserHandler, "$JS.API.STREAM.INFO." + natslog.LedgerStream, apiRequest("$JS.API.STREAM.INFO."+natslog.LedgerStream, nil)},
		{natslog.UserHandler, "_INBOX.auditor.x", publish("_INBOX.auditor.x")},
		{natslog.UserHandler, "_INBOX.sequencer.x", publish("_INBOX.sequencer.x")},
		{natslog.UserHandler, "gavel.submit.statement", publish("gavel.submit.statement")},
		{natslog.UserHandler, "_INBOX.member.>", subscribe("_INBOX.member.>")},
	} {
		t.Run(string(tc.user)+" "+tc.subject, func(t *testing.T) {
			opCtx, cancel := context.WithCancel(ctx)
			before := f.denied[tc.user].matching(tc.subject)
			done := make(chan struct{})
			go func() { _ = tc.do(opCtx, f.conns[tc.user], f.c.JetStream(f.conns[tc.user])); close(done) }()
			f.denied[tc.user].waitForMore(t, tc.subject, before)
			cancel()
			<-done
		})
	}
	// Their own jobs: the sequencer writes and manages streams (the ledger
	// itself denies deletes and purges, to the sequencer too), the feed
	// publisher writes feeds.
	seqJS := f.c.JetStream(f.conns[natslog.UserSequencer])
	if _, err := newPublisher(t, f.conns[natslog.UserSequencer]).PublishOne(ctx, "gavel.ledger.gov", []byte("21"), 20); err != nil {
		t.Fatal(err)
	}
	if err := natslog.EnsureStreams(ctx, seqJS, 1); err != nil {
		t.Fatal(err)
	}
	ledger, err := seqJS.Stream(ctx, natslog.LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.DeleteMsg(ctx, 1); err == nil {
		t.Fatal("the sequencer deleted a ledger entry")
	}
	if err := ledger.Purge(ctx); err == nil {
		t.Fatal("the sequencer purged the ledger")
	}
	if _, err := f.c.JetStream(f.conns[natslog.UserFeeds]).Publish(ctx, "gavel.feed.map", []byte("m")); err != nil {
		t.Fatal(err)
	}
	checkLedger(t, ctx, natslog.NewReader(seqJS), append(f.ledger, natslog.Msg{Subject: "gavel.ledger.gov", Data: []byte("21")}))
}

// TestDurableThroughCreateIsBounded: the CREATE subject cannot tell a
// durable from an ephemeral by permissions, so the stream's consumer
// limits make any such "durable" go once it has had no interest for the
// threshold, like an ephemeral.
func TestDurableThroughCreateIsBounded(t *testing.T) {
	f := newAuthFixture(t)
	ctx := testContext(t)
	js := f.c.JetStream(f.conns[auditor])
	cons, err := js.CreateConsumer(ctx, natslog.LedgerStream, jetstream.ConsumerConfig{Durable: "sticky", AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatal(err)
	}
	if got := cons.CachedInfo().Config.InactiveThreshold; got != natslog.ConsumerInactiveThreshold {
		t.Fatalf("durable's inactive threshold %v, want the stream's %v", got, natslog.ConsumerInactiveThreshold)
	}
	if _, err := js.CreateConsumer(ctx, natslog.LedgerStream, jetstream.ConsumerConfig{Durable: "forever", AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: 24 * time.Hour}); err == nil {
		t.Fatal("a consumer with a longer inactive threshold than the stream's limit was created")
	}
}

// TestConsumerExhaustion: an auditor creating consumers on the ledger is
// refused at the limit; a node's ordered consumer on the feeds, the
// sequencer's reads and writes keep working, also after a restart.
func TestConsumerExhaustion(t *testing.T) {
	f := newAuthFixture(t)
	ctx := testContext(t)
	js := f.c.JetStream(f.conns[auditor])
	var created int
	for ; created <= natslog.MaxLedgerConsumers; created++ {
		_, err := js.CreateConsumer(ctx, natslog.LedgerStream, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy})
		if err != nil {
			if !errors.Is(err, jetstream.ErrMaximumConsumersLimit) {
				t.Fatalf("consumer %d: %v", created, err)
			}
			break
		}
	}
	if created != natslog.MaxLedgerConsumers {
		t.Fatalf("created %d consumers, want the limit %d", created, natslog.MaxLedgerConsumers)
	}
	others := func() {
		t.Helper()
		node := f.c.JetStream(f.conns[natslog.UserNode])
		if err := readOrdered(natslog.FeedsStream, "params-1")(ctx, nil, node); err != nil {
			t.Fatalf("node's ordered consumer: %v", err)
		}
		r := natslog.NewReader(f.c.JetStream(f.conns[natslog.UserSequencer]))
		last, err := r.LastSequence(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newPublisher(t, f.conns[natslog.UserSequencer]).PublishOne(ctx, "gavel.ledger.gov", []byte("more"), last); err != nil {
			t.Fatalf("sequencer append: %v", err)
		}
	}
	others()
	f.c.Restart(0)
	f.conns[natslog.UserNode] = f.c.ConnectClient(0, natslog.UserNode)
	f.conns[natslog.UserSequencer] = f.c.ConnectReplica(0)
	others()
	// Still refused for the auditor after the restart.
	if _, err := f.c.JetStream(f.c.ConnectClient(0, auditor)).CreateConsumer(ctx, natslog.LedgerStream, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy}); !errors.Is(err, jetstream.ErrMaximumConsumersLimit) {
		t.Fatalf("after restart: %v", err)
	}
}

func TestUnknownUsersRefused(t *testing.T) {
	c := natstest.Start(t, 1)
	url := c.Servers[0].ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":4222") {
		t.Fatalf("ClientURL = %q, want a random 127.0.0.1 port", url)
	}
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("anonymous connection accepted")
	}
	stranger := filepath.Join(t.TempDir(), "stranger.nk")
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	if err := os.WriteFile(stranger, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	opt, err := natslog.ConnectOptions(stranger)
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(url, opt); err == nil {
		nc.Close()
		t.Fatal("unknown nkey accepted")
	}
}

func TestConnectionCap(t *testing.T) {
	dir := t.TempDir()
	e, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0", MaxConnections: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	for range 2 {
		nc, err := e.ConnectClient(natslog.UserAuditor)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
	}
	if nc, err := e.ConnectClient(natslog.UserAuditor, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("a third connection was accepted with MaxConnections 2")
	}
}

func TestExtraClientKeys(t *testing.T) {
	dir := t.TempDir()
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "member.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0", ClientKeys: map[natslog.User][]string{natslog.UserMember: {pub}}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	opt, err := natslog.ConnectOptions(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	denied := newViolations()
	nc, err := nats.Connect(e.ClientURL(), opt, nats.ErrorHandler(denied.handler), nats.CustomInboxPrefix(natslog.UserMember.InboxPrefix()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("gavel.ledger.gov", nil); err != nil {
		t.Fatal(err)
	}
	denied.waitFor(t, "gavel.ledger.gov")

	for _, keys := range []map[natslog.User][]string{{natslog.UserMember: {"not-a-key"}}, {natslog.UserSequencer: {pub}}} {
		if _, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", ClientKeys: keys}); engine.KindOf(err) != engine.KindInvalid {
			t.Fatalf("bad client keys %v: %v", keys, err)
		}
	}
}

func TestSeedsPersistAcrossRestart(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	before := c.Servers[0].Seeds()
	for u, key := range before.Keys {
		st, err := os.Stat(before.File(u))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v, want 0600", before.File(u), err, st.Mode().Perm())
		}
		if !nkeys.IsValidPublicUserKey(key) {
			t.Fatalf("%s: key %q", u, key)
		}
		var info natslog.UserInfo
		b, err := os.ReadFile(filepath.Join(before.Dir, u.InfoFile()))
		if err != nil || json.Unmarshal(b, &info) != nil || info != (natslog.UserInfo{User: key, InboxPrefix: "_INBOX." + string(u)}) {
			t.Fatalf("%s: info %s %v", u, b, err)
		}
	}
	if len(before.Keys) != 7 || len(slices.Compact(slices.Sorted(maps.Values(before.Keys)))) != 7 {
		t.Fatalf("seven distinct users expected: %v", before.Keys)
	}
	c.Restart(0)
	if after := c.Servers[0].Seeds(); !maps.Equal(after.Keys, before.Keys) {
		t.Fatalf("seeds changed on restart: %+v -> %+v", before, after)
	}
	// The same client seed file still gets in.
	client := c.ConnectClient(0, natslog.UserAuditor)
	if _, err := natslog.NewReader(c.JetStream(client)).LastSequence(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRetiredClientSeedRemoved(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "client.nk")
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	if err := os.WriteFile(legacy, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := natslog.LoadOrCreateSeeds(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(legacy); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("client.nk still there: %v", err)
	}
}

func TestConnectOptionsSetsInboxPrefix(t *testing.T) {
	seeds, err := natslog.LoadOrCreateSeeds(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opt, err := natslog.ConnectOptions(seeds.File(natslog.UserNode))
	if err != nil {
		t.Fatal(err)
	}
	o := nats.GetDefaultOptions()
	if err := opt(&o); err != nil || o.InboxPrefix != "_INBOX.node" || o.Nkey != seeds.Keys[natslog.UserNode] {
		t.Fatalf("options: prefix %q nkey %q, %v", o.InboxPrefix, o.Nkey, err)
	}
	// An info that names another user is refused.
	info := filepath.Join(seeds.Dir, natslog.UserNode.InfoFile())
	if err := os.WriteFile(info, []byte(`{"user":"`+seeds.Keys[natslog.UserMember]+`","inbox_prefix":"_INBOX.node"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := natslog.ConnectOptions(seeds.File(natslog.UserNode)); engine.KindOf(err) != engine.KindInvalid {
		t.Fatalf("mismatched info: %v", err)
	}
	if err := os.WriteFile(info, []byte(`{"user":"`+seeds.Keys[natslog.UserNode]+`","inbox_prefix":"_INBOX.>"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := natslog.ConnectOptions(seeds.File(natslog.UserNode)); engine.KindOf(err) != engine.KindInvalid {
		t.Fatalf("wildcard prefix: %v", err)
	}
}

func TestConnectOptionsDetectsFileKind(t *testing.T) {
	dir := t.TempDir()
	account, _ := nkeys.CreateAccount()
	user, _ := nkeys.CreateUser()
	userPub, _ := user.PublicKey()
	userSeed, _ := user.Seed()
	token, err := jwt.NewUserClaims(userPub).Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(token, userSeed)
	if err != nil {
		t.Fatal(err)
	}
	accountSeed, _ := account.Seed()
	files := map[string][]byte{
		"user.creds":   creds,
		"user.nk":      append(userSeed, '\n'),
		"account.nk":   accountSeed,
		"garbage.nk":   []byte("hello"),
		"truncated.nk": userSeed[:20],
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		file    string
		wantJWT string
		wantKey string
		wantErr bool
	}{
		{file: "user.creds", wantJWT: token},
		{file: "user.nk", wantKey: userPub},
		{file: "account.nk", wantErr: true},
		{file: "garbage.nk", wantErr: true},
		{file: "truncated.nk", wantErr: true},
		{file: "missing.nk", wantErr: true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			opt, err := natslog.ConnectOptions(filepath.Join(dir, tc.file))
			if tc.wantErr {
				if engine.KindOf(err) != engine.KindInvalid {
					t.Fatalf("err = %v, want KindInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := nats.GetDefaultOptions()
			if err := opt(&o); err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.wantJWT != "":
				if o.UserJWT == nil {
					t.Fatal("no user JWT callback")
				}
				if got, err := o.UserJWT(); err != nil || got != tc.wantJWT {
					t.Fatalf("JWT = %q, %v", got, err)
				}
			default:
				if o.Nkey != tc.wantKey || o.SignatureCB == nil {
					t.Fatalf("nkey = %q", o.Nkey)
				}
			}
		})
	}
}

// TestEnsureStreamsDropsUnboundedConsumers: a ledger from before the
// consumer limits may hold durables a client made (the attack of issue 7);
// the next start removes them, keeps bounded ones, and sets the limits.
func TestEnsureStreamsDropsUnboundedConsumers(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	seqJS := c.JetStream(c.ConnectReplica(0))
	for _, cfg := range []jetstream.StreamConfig{natslog.LedgerStreamConfig(1), natslog.FeedsStreamConfig(1)} {
		cfg.MaxConsumers, cfg.ConsumerLimits = 0, jetstream.StreamConsumerLimits{}
		if _, err := seqJS.CreateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	auditorJS := c.JetStream(c.ConnectClient(0, auditor))
	for _, cc := range []jetstream.ConsumerConfig{
		{Durable: "forever", AckPolicy: jetstream.AckNonePolicy},
		{Durable: "long", AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Hour},
		{Name: "bounded", AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute},
	} {
		if _, err := auditorJS.CreateConsumer(ctx, natslog.LedgerStream, cc); err != nil {
			t.Fatal(err)
		}
	}
	if err := natslog.EnsureStreams(ctx, seqJS, 1); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"forever": false, "long": false, "bounded": true} {
		_, err := auditorJS.Consumer(ctx, natslog.LedgerStream, name)
		if got := err == nil; got != want {
			t.Errorf("consumer %s kept: %v (%v), want %v", name, got, err, want)
		}
	}
	info, err := seqJS.Stream(ctx, natslog.LedgerStream)
	if err != nil || info.CachedInfo().Config.MaxConsumers != natslog.MaxLedgerConsumers {
		t.Fatalf("ledger after the upgrade: %v", err)
	}
}

// TestPushConsumersWriteNowhere: the CREATE subject cannot refuse a push
// consumer (its deliver subject is in the body), so one is tried with the
// subjects that matter. A push consumer delivers only where someone
// listens: into the submit subjects (where the handler drops what has no
// inbox to answer) but not into the feeds, the ledger or the JetStream API.
func TestPushConsumersWriteNowhere(t *testing.T) {
	f := newAuthFixture(t)
	ctx := testContext(t)
	js := f.c.JetStream(f.conns[auditor])
	// A listener on a submit subject, as the handler's (a push consumer
	// with the replicas' queue group would reach those the same way).
	var delivered sync.WaitGroup
	delivered.Add(len(f.ledger))
	sub, err := f.conns[natslog.UserHandler].Subscribe("gavel.submit.statement", func(*nats.Msg) { delivered.Done() })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := f.conns[natslog.UserHandler].Flush(); err != nil {
		t.Fatal(err)
	}
	targets := []string{"gavel.submit.statement", "gavel.feed.params",
		"$JS.API.STREAM.DELETE.GAVEL_FEEDS", "$JS.API.STREAM.PURGE.GAVEL_FEEDS", "$JS.API.CONSUMER.DELETE.GAVEL_LEDGER.push0"}
	for i, subject := range targets {
		cfg := jetstream.ConsumerConfig{Name: fmt.Sprintf("push%d", i), DeliverSubject: subject, AckPolicy: jetstream.AckNonePolicy}
		if _, err := js.CreateConsumer(ctx, natslog.LedgerStream, cfg); err != nil {
			t.Fatalf("push consumer to %s: %v", subject, err)
		}
	}
	// Into the ledger from the feeds (from the ledger itself the server
	// refuses a cycle).
	if _, err := f.c.JetStream(f.conns[node]).CreateConsumer(ctx, natslog.FeedsStream, jetstream.ConsumerConfig{Name: "push-ledger", DeliverSubject: "gavel.ledger.statement", AckPolicy: jetstream.AckNonePolicy}); err != nil {
		t.Fatal(err)
	}
	// The one with a listener delivers the whole ledger; by then the others
	// have been tried for as long.
	done := make(chan struct{})
	go func() { delivered.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the push consumer to the submit subject never delivered the ledger")
	}
	seqJS := f.c.JetStream(f.conns[natslog.UserSequencer])
	checkLedger(t, ctx, natslog.NewReader(seqJS), f.ledger)
	feeds, err := seqJS.Stream(ctx, natslog.FeedsStream)
	if err != nil || feeds.CachedInfo().State.Msgs != 1 {
		t.Fatalf("feeds after the push consumers: %v", err)
	}
}

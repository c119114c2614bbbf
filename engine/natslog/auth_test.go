package natslog_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
	mu   sync.Mutex
	seen []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		v.mu.Lock()
		v.seen = append(v.seen, err.Error())
		v.mu.Unlock()
	}
}

// waitFor waits until a violation naming subject arrives.
func (v *violations) waitFor(t *testing.T, subject string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		v.mu.Lock()
		for _, s := range v.seen {
			if strings.Contains(s, `"`+subject+`"`) {
				v.mu.Unlock()
				return
			}
		}
		v.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no permissions violation for %s (seen %q)", subject, v.seen)
}

func TestClientUserReadsAndSubmitsOnly(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	replica := c.ConnectReplica(0)
	replicaJS := c.JetStream(replica)
	p := newPublisher(t, replica)
	ledger := batchOf("auth", 20)
	if _, err := p.PublishBatch(ctx, ledger, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := replicaJS.Publish(ctx, "gavel.feed.params", []byte("params-1"), jetstream.WithMsgID("1.21")); err != nil {
		t.Fatal(err)
	}
	// The replica answers submissions.
	sub, err := replica.Subscribe(natslog.SubmitSubjects, func(m *nats.Msg) { _ = m.Respond(append([]byte("ok:"), m.Data...)) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := replica.Flush(); err != nil {
		t.Fatal(err)
	}

	var denied violations
	client := c.ConnectClient(0, nats.ErrorHandler(denied.handler))
	clientJS := c.JetStream(client)

	t.Run("submits", func(t *testing.T) {
		reply, err := client.RequestWithContext(ctx, "gavel.submit.gov.proposal", []byte("p"))
		if err != nil || string(reply.Data) != "ok:p" {
			t.Fatalf("submit: %v %v", reply, err)
		}
	})
	t.Run("reads the ledger", func(t *testing.T) {
		r := natslog.NewReader(clientJS)
		checkLedger(t, ctx, r, ledger)
		subject, data, err := r.Get(ctx, 7)
		if err != nil || subject != ledger[6].Subject || string(data) != string(ledger[6].Data) {
			t.Fatalf("Get(7) = %q %q %v", subject, data, err)
		}
		if _, _, err := r.Get(ctx, 21); engine.KindOf(err) != engine.KindNotFound {
			t.Fatalf("Get(21) = %v, want KindNotFound", err)
		}
	})
	t.Run("reads the feeds", func(t *testing.T) {
		feeds, err := clientJS.Stream(ctx, natslog.FeedsStream)
		if err != nil {
			t.Fatal(err)
		}
		m, err := feeds.GetLastMsgForSubject(ctx, "gavel.feed.params")
		if err != nil || string(m.Data) != "params-1" {
			t.Fatalf("last params: %v %v", m, err)
		}
		cons, err := clientJS.OrderedConsumer(ctx, natslog.FeedsStream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil || string(msg.Data()) != "params-1" {
			t.Fatalf("feed consumer: %v %v", msg, err)
		}
	})

	// Every write the client tries is refused by permissions; the calls fail
	// (their requests go unanswered) and the server says why.
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	writes := []struct {
		name    string
		subject string
		do      func() error
	}{
		{"publish ledger", "gavel.ledger.statement", func() error {
			return client.Publish("gavel.ledger.statement", []byte("forged"))
		}},
		{"publish feed", "gavel.feed.params", func() error { return client.Publish("gavel.feed.params", []byte("forged")) }},
		{"atomic batch", "gavel.ledger.statement", func() error {
			_, err := newPublisher(t, client).PublishBatch(short(), batchOf("forged", 3), 20)
			return err
		}},
		{"js publish", "gavel.ledger.gov", func() error {
			_, err := newPublisher(t, client).PublishOne(short(), "gavel.ledger.gov", []byte("forged"), 20)
			return err
		}},
		{"delete message", "$JS.API.STREAM.MSG.DELETE.GAVEL_LEDGER", func() error {
			s, err := clientJS.Stream(ctx, natslog.LedgerStream)
			if err != nil {
				return err
			}
			return s.DeleteMsg(short(), 1)
		}},
		{"purge", "$JS.API.STREAM.PURGE.GAVEL_LEDGER", func() error {
			s, err := clientJS.Stream(ctx, natslog.LedgerStream)
			if err != nil {
				return err
			}
			return s.Purge(short())
		}},
		{"delete stream", "$JS.API.STREAM.DELETE.GAVEL_LEDGER", func() error {
			return clientJS.DeleteStream(short(), natslog.LedgerStream)
		}},
		{"update stream", "$JS.API.STREAM.UPDATE.GAVEL_LEDGER", func() error {
			cfg := natslog.LedgerStreamConfig(1)
			cfg.DenyDelete = false
			_, err := clientJS.UpdateStream(short(), cfg)
			return err
		}},
		{"create stream", "$JS.API.STREAM.CREATE.EVIL", func() error {
			_, err := clientJS.CreateStream(short(), jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"gavel.ledger.evil"}})
			return err
		}},
	}
	for _, w := range writes {
		t.Run("refused "+w.name, func(t *testing.T) {
			err := w.do()
			if err == nil && !strings.HasPrefix(w.name, "publish") {
				t.Fatalf("%s succeeded", w.name)
			}
			denied.waitFor(t, w.subject)
		})
	}

	// Nothing changed.
	checkLedger(t, ctx, natslog.NewReader(replicaJS), ledger)
	info, err := replicaJS.Stream(ctx, natslog.LedgerStream)
	if err != nil || !info.CachedInfo().Config.DenyDelete {
		t.Fatalf("ledger stream after attacks: %v", err)
	}
	if _, err := replicaJS.Stream(ctx, "EVIL"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream EVIL: %v", err)
	}
}

func TestReplicaUserMayManageStreams(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	js := c.JetStream(c.ConnectReplica(0))
	p := newPublisher(t, c.ConnectReplica(0))
	if _, err := p.PublishBatch(ctx, batchOf("r", 3), 0); err != nil {
		t.Fatal(err)
	}
	// Idempotent: a second EnsureStreams changes nothing.
	if err := natslog.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	// Even the replica cannot delete or purge ledger entries: the stream
	// itself denies it.
	ledger, err := js.Stream(ctx, natslog.LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.DeleteMsg(ctx, 1); err == nil {
		t.Fatal("replica deleted a ledger entry")
	}
	if err := ledger.Purge(ctx); err == nil {
		t.Fatal("replica purged the ledger")
	}
	// But it manages streams: the feeds stream can be dropped and rebuilt.
	if err := js.DeleteStream(ctx, natslog.FeedsStream); err != nil {
		t.Fatal(err)
	}
	if err := natslog.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "gavel.feed.map", []byte("m")); err != nil {
		t.Fatal(err)
	}
	if seq, err := p.LastSequence(ctx); err != nil || seq != 3 {
		t.Fatalf("LastSequence = %d, %v", seq, err)
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

func TestExtraClientKeys(t *testing.T) {
	dir := t.TempDir()
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "member.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0", ClientKeys: []string{pub}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	opt, err := natslog.ConnectOptions(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	var denied violations
	nc, err := nats.Connect(e.ClientURL(), opt, nats.ErrorHandler(denied.handler))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("gavel.ledger.gov", nil); err != nil {
		t.Fatal(err)
	}
	denied.waitFor(t, "gavel.ledger.gov")

	if _, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", ClientKeys: []string{"not-a-key"}}); engine.KindOf(err) != engine.KindInvalid {
		t.Fatalf("bad client key: %v", err)
	}
}

func TestSeedsPersistAcrossRestart(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	before := c.Servers[0].Seeds()
	for _, f := range []string{before.ReplicaFile, before.ClientFile} {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v, want 0600", f, err, st.Mode().Perm())
		}
	}
	if before.ReplicaKey == before.ClientKey || !nkeys.IsValidPublicUserKey(before.ReplicaKey) {
		t.Fatalf("seeds %+v", before)
	}
	c.Restart(0)
	if after := c.Servers[0].Seeds(); after != before {
		t.Fatalf("seeds changed on restart: %+v -> %+v", before, after)
	}
	// The same client seed file still gets in.
	client := c.ConnectClient(0)
	if _, err := natslog.NewReader(c.JetStream(client)).LastSequence(ctx); err != nil {
		t.Fatal(err)
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

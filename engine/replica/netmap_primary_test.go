package replica_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/engine/replica"
)

// The flag day and the feeds are the primary's work: once a sequencer of a
// newer view has written (an authenticated entry of view+1 that advertises
// an update whose deadline then passes), this replica's sequencer steps
// down, IsPrimary turns false, and the replica neither appends the flag day
// nor advertises the update on gavel.feed.params.
func TestOnlyThePrimaryRunsTheFlagDay(t *testing.T) {
	ctx := context.Background()
	var logged lockedBuffer
	const tick = 10 * time.Millisecond
	r, err := replica.Open(ctx, replica.Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Netmap: replica.NetmapConfig{Tick: tick}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.IsPrimary() {
		t.Fatal("the single replica is not primary")
	}
	js, err := jetstream.New(r.SequencerConn())
	if err != nil {
		t.Fatal(err)
	}
	feeds, err := js.Stream(ctx, natslog.FeedsStream)
	if err != nil {
		t.Fatal(err)
	}
	paramsFeed := func() replica.ParamsFeed {
		t.Helper()
		last, err := feeds.GetLastMsgForSubject(ctx, replica.SubjectFeedParams)
		var f replica.ParamsFeed
		if err == nil {
			err = json.Unmarshal(last.Data, &f)
		}
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	waitFor(t, func() bool {
		_, err := feeds.GetLastMsgForSubject(ctx, replica.SubjectFeedParams)
		m := r.Store().Meta()
		return err == nil && m.Seqno == m.LastSignature // the feed is up, the log quiet
	})

	// Another sequencer's entry, in view+1, authenticated by a service
	// node's key: it advertises an update due shortly.
	last := r.Store().Meta()
	now := time.Now()
	deadline := now.Add(300 * time.Millisecond).UTC()
	u, err := netmap.ParseSetParameters([]byte(`{"parameters":{"minimum_platform_version":1,"notaries":[],"max_message_size":1024,"max_transaction_size":1024},`+
		`"description":"elsewhere","update_deadline":"`+deadline.Format(time.RFC3339Nano)+`"}`), netmap.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	e := &engine.Entry{Kind: engine.KindGovBallot, View: last.View + 1, Seqno: last.Seqno + 1, TimeMillis: now.UnixMilli()}
	if e.Writes, _, err = u.Apply(r.Store(), engine.Facts{TxID: e.TxID(), Time: now}, netmap.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	e.Seal()
	data, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: e.Subject(), Data: data, Header: nats.Header{
		engine.HeaderNode: {r.Node().ID}, engine.HeaderAuth: {r.Node().Signer().Sign(e.Seqno, e.Subject(), data)}}})
	if err != nil || ack.Sequence != e.Seqno {
		t.Fatalf("the newer view's entry: %v %v", ack, err)
	}
	// The next write finds it: the sequencer catches up and steps down.
	iss, err := issuer.New("ES256", now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	st, err := iss.Sign("after", "text/plain", []byte("x"), now)
	if err != nil {
		t.Fatal(err)
	}
	r.RegisterStatement(ctx, st) // refused or not, it makes the sequencer look
	waitFor(t, func() bool { return !r.IsPrimary() })
	if _, ok, err := netmap.LoadPending(r.Store()); err != nil || !ok {
		t.Fatalf("the newer view's update is not in the state: %v %v", ok, err)
	}

	// Past the deadline, give the loop many ticks to (wrongly) act: there
	// is no state to wait on for something that must not happen.
	waitFor(t, func() bool { return time.Now().After(deadline) })
	time.Sleep(30 * tick)
	if f := paramsFeed(); f.Update != nil {
		t.Fatalf("a replica that is not primary advertised the update: %+v", f.Update)
	}
	if s := logged.String(); strings.Contains(s, "flag day") {
		t.Fatalf("a replica that is not primary tried the flag day:\n%s", s)
	}
}

package replica_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/internal/syncbuf"
)

// The flag day and the feeds are the primary's work: once a sequencer of a
// newer view has written (an authenticated entry of view+1 that advertises
// an update whose deadline then passes), this replica's sequencer steps
// down, IsPrimary turns false, and the replica neither appends the flag day
// nor advertises the update on gavel.feed.params.
func TestOnlyThePrimaryRunsTheFlagDay(t *testing.T) {
	ctx := context.Background()
	var logged syncbuf.Buffer
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
	// Far enough that the replica has stepped down before it passes even
	// on a loaded machine: a primary that reaches it first may rightly act.
	deadline := now.Add(2 * time.Second).UTC()
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

// Map reads racing a supervisor restart (a committed round that fails to
// apply: the store is closed, re-opened and caught up) either answer from
// one store or are refused as restarting; none reads a closed store.
func TestMapReadsDuringARestart(t *testing.T) {
	ctx := context.Background()
	var armed, failed atomic.Bool
	cfg := replica.Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Netmap: replica.NetmapConfig{Tick: time.Millisecond}}
	cfg.Sequencer.Knobs = &sequencer.TestingKnobs{ApplyFault: func(entries []*engine.Entry) error {
		if armed.Load() && failed.CompareAndSwap(false, true) {
			return errors.New("injected: pebble write failed")
		}
		return nil
	}}
	r, err := replica.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stop := make(chan struct{})
	errs := make(chan error, 1)
	var reads, refused atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := r.SignedMap(ctx)
				if err == nil {
					_, err = r.NodeInfos(ctx)
				}
				if err == nil {
					_, err = r.Acceptances(ctx, "")
				}
				reads.Add(1)
				if err == nil {
					continue
				}
				if e := engine.AsError(err); e.Kind == engine.KindUnavailable && e.Code == replica.CodeRestarting {
					refused.Add(1)
					continue
				}
				select {
				case errs <- err:
				default:
				}
				return
			}
		}()
	}
	armed.Store(true)
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := iss.Sign("restart", "text/plain", []byte("x"), time.Now())
	r.RegisterStatement(ctx, st) // its round fails to apply: the restart
	waitFor(t, func() bool {
		info, _ := r.Network(ctx)
		return failed.Load() && info.Writable && r.Sequencer().View() == 2
	})
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("a map read during the restart: %v", err)
	default:
	}
	t.Logf("%d reads, %d refused as restarting", reads.Load(), refused.Load())
}

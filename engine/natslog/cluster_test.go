package natslog_test

import (
	"context"
	"errors"
	"time"

	"fmt"
	"github.com/gavelhq/gavel/engine"
	"testing"

	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/natslog/natstest"
)

func TestClusterR3AtomicBatch(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 3)
	for _, e := range c.Servers {
		if err := e.WaitJetStreamReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c.EnsureStreams()
	info, err := c.JetStream(c.ConnectReplica(1)).Stream(ctx, natslog.LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := info.CachedInfo().Config; cfg.Replicas != 3 || !cfg.AllowAtomicPublish {
		t.Fatalf("ledger config: replicas %d atomic %v", cfg.Replicas, cfg.AllowAtomicPublish)
	}

	// Publish through every server in turn, whichever holds the stream leader.
	var stored []natslog.Msg
	last := uint64(0)
	for i, n := range []int{1, 100, 7} {
		p := newPublisher(t, c.ConnectReplica(i))
		msgs := batchOf(fmt.Sprint("c", i), n)
		got, err := p.PublishBatch(ctx, msgs, last)
		if err != nil || got != last+uint64(n) {
			t.Fatalf("batch %d via server %d: %d, %v", n, i, got, err)
		}
		last = got
		stored = append(stored, msgs...)
	}
	_, err = newPublisher(t, c.ConnectReplica(2)).PublishBatch(ctx, batchOf("stale", 5), 1)
	assertWrongLastSequence(t, err, 1, last)

	// Every server reads the whole ledger back, the client user included,
	// by range and by following.
	for i := range c.Servers {
		r := natslog.NewReader(c.JetStream(c.ConnectClient(i, natslog.UserAuditor)))
		checkLedger(t, ctx, r, stored)
		followCtx, stop := context.WithCancel(ctx)
		followed := 0
		err := r.Follow(followCtx, 1, func(m engine.LedgerMsg) error {
			seq, data := m.Seq, m.Data
			if followed++; seq != uint64(followed) || string(data) != string(stored[seq-1].Data) {
				return fmt.Errorf("followed %d: seq %d %q", followed, seq, data)
			}
			if seq == last {
				stop()
			}
			return nil
		})
		stop()
		if !errors.Is(err, context.Canceled) || followed != len(stored) {
			t.Fatalf("Follow via server %d: %v after %d entries", i, err, followed)
		}
	}

	// Losing one server of three keeps the ledger writable and readable.
	c.Stop(0)
	p := newPublisher(t, c.ConnectReplica(1))
	more := batchOf("degraded", 10)
	for {
		// While the stream elects a new leader nobody answers: retry those
		// errors, which promise nothing was stored, as a sequencer would.
		got, err := p.PublishBatch(ctx, more, last)
		if err == nil && got == last+10 {
			break
		}
		if engine.KindOf(err) != engine.KindUnavailable || errors.Is(err, natslog.ErrCommitOutcomeUnknown) || ctx.Err() != nil {
			t.Fatalf("batch with one server down: %d, %v", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkLedger(t, ctx, natslog.NewReader(c.JetStream(c.ConnectReplica(2))), append(stored, more...))
}

//go:build fault

// The partition test is in the fault tier (task test:fault): it runs
// 35–40 s, most of it JetStream's raft elections on both sides of the cut
// and the cut-off primary's in-flight append waiting out its 30 s bound.

package replica_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica/internal/netsplit"
)

// partitionBound bounds a primary change the old primary cannot take part
// in: the stream leaders the cut took along are elected again after
// raft's election timeout, 4–9 s at random (not configurable in
// nats-server), then the lease runs out. Issue 11's target is 7 s; the
// test logs what it measured against it.
const (
	crashTarget    = 7 * time.Second
	partitionBound = 9*time.Second + testLeaseTTL
)

// waitUntil polls cond until it holds or a minute has passed.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The primary's server is cut off from the other two (its routes dropped
// on loopback) while writes go through both sides. The majority takes the
// lease and writes on; the cut-off primary acknowledges nothing it then
// loses, steps down without writing, and once healed follows and catches
// up: every replica holds one history (equal roots at the same seqno,
// views that never go back along the ledger).
func TestPartitionedPrimaryNeverForks(t *testing.T) {
	split := netsplit.Start(t, 3)
	tr := newTrio(t, split.Servers, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A planned change first: its successor moves the ledger's stream
	// leader to its own server, as every new primary does, so the cut
	// takes the stream's leader with the primary.
	if err := tr.reps[tr.primary()].StepDown(ctx, tr.ids[1]); err != nil {
		t.Fatal(err)
	}
	p := tr.primary()
	via := (p + 1) % 3
	acked := map[string]engine.TxID{}
	for k := range 5 {
		name := fmt.Sprintf("before/%d", k)
		tx, err := tr.register(ctx, via, name)
		if err != nil {
			t.Fatal(err)
		}
		acked[name] = tx
	}
	oldView := tr.reps[p].Store().Meta().View
	major := tr.startTolerantWriter(via, "majority", 5*time.Second)
	minor := tr.startTolerantWriter(p, "minority", 3*time.Second)
	major.waitAcks(t, 10)
	minor.waitAcks(t, 10)

	leaders := streamLeaders(t, tr.reps[via].SequencerConn())
	cut := time.Now()
	split.Isolate(p)
	q, took, steppedDown := -1, time.Duration(0), time.Duration(0)
	waitUntil(t, "a new primary on the majority side, and the cut-off one stepped down", func() bool {
		if steppedDown == 0 && !tr.reps[p].IsPrimary() {
			steppedDown = time.Since(cut)
		}
		for i, r := range tr.reps {
			if q < 0 && i != p && r.IsPrimary() {
				q, took = i, time.Since(cut)
			}
		}
		return q >= 0 && steppedDown > 0
	})
	n := major.count()
	major.waitAcks(t, n+20)
	gapMajor := time.Since(cut)
	minorBeforeHeal := minor.count()

	split.Heal()
	healed := time.Now()
	// The rejoining server can cost the majority its lease bucket's
	// leader once more (its raft term went up while it was alone), so the
	// primary after the heal may be another one: every replica names it.
	q2 := tr.primary()
	follows := time.Since(healed)
	// Writes through the old primary commit again, through the new one.
	tx, err := tr.register(ctx, p, "through-the-healed")
	if err != nil {
		t.Fatal(err)
	}
	acked["through-the-healed"] = tx
	caughtUp := time.Since(healed)
	major.halt()
	minor.halt()
	for _, w := range []*writer{major, minor} {
		for name, tx := range w.acked {
			acked[name] = tx
		}
	}
	var minorAfterCut int
	for name, at := range minor.ackedAt {
		if at.After(cut) && at.Before(healed) {
			minorAfterCut++
			t.Logf("acknowledged by the cut-off side during the cut: %s at %s", name, minor.acked[name])
		}
	}
	top := tr.converged()
	reportDuplicates(t, tr)
	tr.checkLedger(acked)
	newView := tr.reps[q2].Store().Meta().View
	if q2 == p || newView <= oldView || tx.View != newView {
		t.Fatalf("after the heal replica %d leads (the cut-off one was %d); views: old %d, new %d, the healed write's %s", q2, p, oldView, newView, tx)
	}
	// One chain of views: along the ledger a view never comes back, so
	// nothing of the stale view follows the new primary's view change.
	for i, r := range tr.reps {
		st := r.Store()
		var last uint64
		for s := uint64(1); s <= st.Meta().Seqno; s++ {
			rec, ok, err := st.Leaf(s)
			if err != nil || !ok {
				t.Fatalf("replica %d: leaf %d: %v", i, s, err)
			}
			if rec.View < last {
				t.Fatalf("replica %d: entry %d of view %d follows view %d: two histories", i, s, rec.View, last)
			}
			last = rec.View
		}
	}
	t.Logf("cut at view %d (stream leaders %v, the primary's server %s): replica %d leads after %v (target %v), the cut-off primary stepped down after %v, 20 majority writes by %v; "+
		"minority: %d acknowledged before the heal (%d during the cut), %d refused or in doubt; healed: replica %d leads and every replica names it after %v, its write answered after %v; all at seqno %d, view %d; %d routes dropped",
		oldView, leaders, split.Servers[p].Server().Name(), q, took.Round(time.Millisecond), crashTarget, steppedDown.Round(time.Millisecond), gapMajor.Round(time.Millisecond),
		minorBeforeHeal, minorAfterCut, len(minor.failed), q2, follows.Round(time.Millisecond), caughtUp.Round(time.Millisecond), top, newView, split.Dropped())
	if took > partitionBound {
		t.Errorf("the majority's new primary took %v, over raft's longest election plus the lease TTL, %v", took, partitionBound)
	}
}

// streamLeaders names the servers leading the ledger and the lease bucket.
func streamLeaders(t *testing.T, nc *nats.Conn) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, name := range []string{natslog.LedgerStream, "KV_" + natslog.LeaseBucket} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Cluster != nil {
			out[name] = info.Cluster.Leader
		}
	}
	return out
}

// reportDuplicates names every statement a replica's ledger holds more
// than once, with the txids of its copies.
func reportDuplicates(t *testing.T, tr *trio) {
	t.Helper()
	for i, r := range tr.reps {
		st := r.Store()
		at := map[engine.Digest][]engine.TxID{}
		for s := uint64(1); s <= st.Meta().Seqno; s++ {
			rec, ok, err := st.Leaf(s)
			if err != nil || !ok {
				t.Fatalf("replica %d: leaf %d: %v", i, s, err)
			}
			if rec.Kind == engine.KindStatement {
				at[rec.ClaimsDigest] = append(at[rec.ClaimsDigest], engine.TxID{View: rec.View, Seqno: s})
			}
		}
		for d, txs := range at {
			if len(txs) > 1 {
				t.Errorf("replica %d: statement %x is in the ledger %d times: %v", i, d[:8], len(txs), txs)
			}
		}
	}
}

package replica_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/projections"
)

// writer registers statements one after another through replica via
// until stopped, recording when each was acknowledged. A strict writer
// (startWriter) expects every write to be acknowledged; a tolerant one
// (startTolerantWriter) is for a cut, where refusals and writes in doubt
// are expected: it keeps them as failures and goes on.
type writer struct {
	mu       sync.Mutex
	acked    map[string]engine.TxID
	ackedAt  map[string]time.Time
	times    []time.Time // of the acknowledgements, in order
	failed   []error
	tolerant bool
	stop     chan struct{}
	done     chan struct{}
}

func (tr *trio) startWriter(via int, prefix string) *writer {
	return tr.startWriterWith(via, prefix, 30*time.Second, false)
}

// startTolerantWriter gives each write each, and backs off briefly after
// a refusal (no primary: do not spin).
func (tr *trio) startTolerantWriter(via int, prefix string, each time.Duration) *writer {
	return tr.startWriterWith(via, prefix, each, true)
}

func (tr *trio) startWriterWith(via int, prefix string, each time.Duration, tolerant bool) *writer {
	w := &writer{acked: map[string]engine.TxID{}, ackedAt: map[string]time.Time{}, tolerant: tolerant,
		stop: make(chan struct{}), done: make(chan struct{})}
	tr.t.Cleanup(w.halt)
	go func() {
		defer close(w.done)
		for k := 0; ; k++ {
			select {
			case <-w.stop:
				return
			default:
			}
			name := fmt.Sprintf("%s/%d", prefix, k)
			ctx, cancel := context.WithTimeout(context.Background(), each)
			tx, err := tr.register(ctx, via, name)
			cancel()
			now := time.Now()
			w.mu.Lock()
			if err != nil {
				w.failed = append(w.failed, fmt.Errorf("%s: %w", name, err))
			} else {
				w.acked[name], w.ackedAt[name] = tx, now
				w.times = append(w.times, now)
			}
			w.mu.Unlock()
			if err != nil && tolerant {
				select {
				case <-w.stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}()
	return w
}

// waitAcks waits until the writer has n acknowledgements; a strict one
// fails at its first failure.
func (w *writer) waitAcks(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		got, failed := len(w.times), len(w.failed)
		w.mu.Unlock()
		if failed > 0 && !w.tolerant {
			break
		}
		if got >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Fatalf("writer: %d acknowledged, want %d; failures %v", len(w.times), n, w.failed)
}

func (w *writer) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.times)
}

// finish stops the writer and returns its acknowledgements and the
// longest time between two consecutive ones.
func (w *writer) finish(t *testing.T) (map[string]engine.TxID, time.Duration) {
	t.Helper()
	w.halt()
	if len(w.failed) > 0 {
		t.Fatalf("writes failed: %v", w.failed)
	}
	var gap time.Duration
	for i := 1; i < len(w.times); i++ {
		gap = max(gap, w.times[i].Sub(w.times[i-1]))
	}
	return w.acked, gap
}

// reader reads through a replica until stopped, counting failures.
type reader struct {
	reads, failed int
	stop, done    chan struct{}
}

func (tr *trio) startReader(via int) *reader {
	rd := &reader{stop: make(chan struct{}), done: make(chan struct{})}
	r := tr.reps[via]
	tr.t.Cleanup(func() { rd.finish() })
	go func() {
		defer close(rd.done)
		for {
			select {
			case <-rd.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := r.Network(ctx)
			if err == nil {
				_, _, err = r.NodeList(ctx, "", "", projections.Page{})
			}
			if err == nil {
				var tx engine.TxID
				if tx, err = r.Committed(ctx); err == nil {
					_, err = r.TransactionStatus(ctx, tx)
				}
			}
			cancel()
			rd.reads++
			if err != nil {
				rd.failed++
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return rd
}

func (rd *reader) finish() (reads, failed int) {
	select {
	case <-rd.stop:
	default:
		close(rd.stop)
	}
	<-rd.done
	return rd.reads, rd.failed
}

// The primary crashes (its replica and its NATS server stop): another
// replica takes the lease once it runs out, and the writes going through a
// follower resume with nothing lost or duplicated; reads never fail.
func TestPrimaryCrashFailover(t *testing.T) {
	tr := startTrio(t)
	p := tr.primary()
	via, readVia := (p+1)%3, (p+2)%3
	w := tr.startWriter(via, "crash")
	rd := tr.startReader(readVia)
	w.waitAcks(t, 20)
	crashed := time.Now()
	tr.reps[p].Close()
	tr.c.Stop(p)
	q := tr.primary(p)
	took := time.Since(crashed)
	w.waitAcks(t, w.count()+20)
	acked, gap := w.finish(t)
	reads, failedReads := rd.finish()
	t.Logf("crash of the primary: replica %d leads after %v; longest write gap %v (lease TTL %v); %d writes acknowledged; reads %d, failed %d",
		q, took.Round(time.Millisecond), gap.Round(time.Millisecond), testLeaseTTL, len(acked), reads, failedReads)
	if failedReads > 0 {
		t.Fatalf("%d of %d reads failed during the failover", failedReads, reads)
	}
	tr.converged(p)
	tr.checkLedger(acked, p)
}

// A primary that stops renewing its lease (paused) keeps believing it
// leads; another replica takes the lease and writes its view change. When
// the old primary's next batch comes, the ledger refuses it: it writes
// nothing, steps down, and the write it was given is forwarded instead.
func TestStalePrimaryIsFencedAndStepsDown(t *testing.T) {
	tr := startTrio(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := tr.primary()
	acked := map[string]engine.TxID{}
	for k := range 5 {
		name := fmt.Sprintf("before/%d", k)
		tx, err := tr.register(ctx, p, name)
		if err != nil {
			t.Fatal(err)
		}
		acked[name] = tx
	}
	info, _ := tr.reps[p].Network(ctx)
	oldView := info.CurrentView
	tr.cfgs[p].Lease.Knobs.Freeze.Store(true)
	q := tr.waitOtherPrimary(p)
	if !tr.reps[p].IsPrimary() {
		t.Fatal("the paused primary stopped believing it leads: the fence is not what is tested")
	}
	info, _ = tr.reps[q].Network(ctx)
	newView := info.CurrentView
	if newView <= oldView {
		t.Fatalf("new primary's view %d is not above the old %d", newView, oldView)
	}
	// The stale primary takes a write: its batch is refused, it steps
	// down, and the write commits through the new primary.
	tx, err := tr.register(ctx, p, "to-the-stale-primary")
	if err != nil {
		t.Fatal(err)
	}
	acked["to-the-stale-primary"] = tx
	if tx.View != newView {
		t.Fatalf("the write committed as %s, not in the new view %d", tx, newView)
	}
	if tr.reps[p].IsPrimary() {
		t.Fatal("the stale primary still leads after its batch was refused")
	}
	tr.cfgs[p].Lease.Knobs.Freeze.Store(false)
	if got := tr.primary(); got != q {
		t.Fatalf("replica %d leads, want %d", got, q)
	}
	tr.converged()
	tr.checkLedger(acked)
	// Nothing of the old view follows the new view's first entry.
	st := tr.reps[q].Store()
	vc := uint64(0)
	for s := uint64(1); s <= st.Meta().Seqno; s++ {
		rec, _, err := st.Leaf(s)
		if err != nil {
			t.Fatal(err)
		}
		if rec.View == newView && vc == 0 {
			vc = s
			if rec.Kind != engine.KindSignature {
				t.Fatalf("the new view's first entry %d is a %s, not a view-change signature", s, rec.Kind)
			}
		}
		if vc > 0 && rec.View == oldView {
			t.Fatalf("entry %d of the stale view %d follows the view change at %d", s, oldView, vc)
		}
	}
	t.Logf("stale primary of view %d fenced by the view change at seqno %d (view %d)", oldView, vc, newView)
}

// waitOtherPrimary waits until some replica other than p holds the lease
// and sequences (p itself may still believe it does).
func (tr *trio) waitOtherPrimary(p int) int {
	tr.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i, r := range tr.reps {
			if i != p && r != nil && r.IsPrimary() {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	tr.t.Fatal("no other replica took the lease")
	return -1
}

// A planned stepdown hands the lease to a named successor in one
// compare-and-swap: writes through the third replica pause only briefly,
// and nothing is lost or duplicated.
func TestPlannedStepdown(t *testing.T) {
	tr := startTrio(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := tr.primary()
	s, via := (p+1)%3, (p+2)%3
	w := tr.startWriter(via, "stepdown")
	rd := tr.startReader(p)
	w.waitAcks(t, 30)
	t0 := time.Now()
	if err := tr.reps[p].StepDown(ctx, tr.ids[s]); err != nil {
		t.Fatal(err)
	}
	handed := time.Since(t0)
	if got := tr.primary(); got != s {
		t.Fatalf("replica %d leads, want the successor %d", got, s)
	}
	w.waitAcks(t, w.count()+30)
	acked, gap := w.finish(t)
	reads, failedReads := rd.finish()
	t.Logf("planned stepdown to replica %d: handed over in %v; longest write gap %v; %d writes; reads %d, failed %d",
		s, handed.Round(time.Millisecond), gap.Round(time.Millisecond), len(acked), reads, failedReads)
	if failedReads > 0 {
		t.Fatalf("%d of %d reads failed during the stepdown", failedReads, reads)
	}
	if err := tr.reps[via].StepDown(ctx, tr.ids[p]); engine.AsError(err).Code != replicaCodeNotPrimary {
		t.Fatalf("a follower's stepdown: %v", err)
	}
	tr.converged()
	tr.checkLedger(acked)
}

const replicaCodeNotPrimary = "NotPrimary"

// A forwarded statement committed by a primary that loses the lease before
// it answers is in doubt; the follower asks the next primary, which finds
// it in the ledger and answers with its txid instead of writing it again.
func TestInDoubtForwardIsNotWrittenTwice(t *testing.T) {
	tr := startTrio(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := tr.primary()
	s, via := (p+1)%3, (p+2)%3
	before := tr.reps[p].Store().Meta().Seqno
	tr.cfgs[p].Lease.Knobs.DropAnswers.Store(true)
	type result struct {
		tx  engine.TxID
		err error
	}
	done := make(chan result, 1)
	go func() {
		tx, err := tr.register(ctx, via, "in-doubt")
		done <- result{tx, err}
	}()
	// Committed at the primary, unanswered.
	for tr.reps[p].Store().Meta().Seqno == before {
		time.Sleep(2 * time.Millisecond)
	}
	if err := tr.reps[p].StepDown(ctx, tr.ids[s]); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.tx.Seqno <= before || res.tx.Seqno > before+2 {
		t.Fatalf("answered %s: not the entry the first primary wrote after %d", res.tx, before)
	}
	tr.converged()
	tr.checkLedger(map[string]engine.TxID{"in-doubt": res.tx})
}

// Only a Trusted service node leads: a replica whose node key the ledger
// does not trust follows and serves, is refused as a stepdown successor,
// and does not take the lease when the primary crashes.
func TestOnlyTrustedNodesLead(t *testing.T) {
	tr := startTrioTrusting(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if p := tr.primary(); p != 0 {
		t.Fatalf("replica %d leads, want 0", p)
	}
	if _, err := tr.register(ctx, 2, "via-the-untrusted"); err != nil {
		t.Fatalf("a write through the untrusted follower: %v", err)
	}
	if err := tr.reps[0].StepDown(ctx, tr.ids[2]); engine.AsError(err).Code != "InvalidSuccessor" {
		t.Fatalf("stepdown to an untrusted node: %v", err)
	}
	tr.reps[0].Close()
	tr.c.Stop(0)
	if q := tr.primary(0); q != 1 {
		t.Fatalf("replica %d took the lease; only replica 1 is a Trusted service node left", q)
	}
	tr.converged(0)
}

// A crashed primary's replica comes back on its restarted server: it
// catches up with what the others wrote meanwhile, follows, and every
// replica again holds the same root and state.
func TestCrashedPrimaryRestartsAndCatchesUp(t *testing.T) {
	tr := startTrio(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := tr.primary()
	acked := map[string]engine.TxID{}
	tr.reps[p].Close()
	tr.c.Stop(p)
	for k := range 10 {
		name := fmt.Sprintf("while-down/%d", k)
		tx, err := tr.register(ctx, (p+1+k%2)%3, name)
		if err != nil {
			t.Fatal(err)
		}
		acked[name] = tx
	}
	q := tr.primary(p)
	tr.c.Restart(p)
	tr.cfgs[p].NATS = tr.c.Servers[p]
	tr.open(p)
	if got := tr.primary(); got != q {
		t.Fatalf("replica %d leads after the restart, want %d", got, q)
	}
	tx, err := tr.register(ctx, p, "through-the-restarted")
	if err != nil {
		t.Fatal(err)
	}
	acked["through-the-restarted"] = tx
	tr.converged()
	tr.checkLedger(acked)
}

package sequencer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/engine/state"
)

// fault is what faultLog does to one append.
type fault int

const (
	clean              fault = iota
	failedPersisted          // stored, then an in-doubt error
	failedNotPersisted       // not stored, an in-doubt error
	ackLost                  // stored, the error comes after a delay
	wrongLastSequence        // a foreign writer lands first: the server refuses
	applyFailed              // stored and acked; the store's apply fails
	storageFull              // refused by the server's store: nothing stored
	partlyPersisted          // only the first entry stored, then an in-doubt error
	stalledLeader            // not stored; "wrong last sequence N" for an N never stored
)

func (f fault) String() string {
	return [...]string{"clean", "failed-persisted", "failed-not-persisted", "ack-lost", "wrong-last-sequence", "apply-failed", "storage-full", "partly-persisted", "stalled-leader"}[f]
}

// faultLog is the real ledger log with the outcome of its first appends
// chosen by plan; later appends are clean.
type faultLog struct {
	*replica.LedgerLog

	mu      sync.Mutex
	plan    []fault
	calls   int
	foreign int // foreign entries written
	// applyFail holds the first seqnos of rounds whose apply must fail.
	applyFail sync.Map // uint64 → struct{}
	// armed is set once the harness has written genesis: the plan is for
	// the rounds after it.
	armed atomic.Bool
}

func inDoubt(what string) error {
	return engine.Wrap(engine.KindUnavailable, "CommitOutcomeUnknown", errors.Join(natslog.ErrCommitOutcomeUnknown, errors.New(what)), "injected")
}

func (l *faultLog) AppendBatch(ctx context.Context, subjects []string, data [][]byte, expectedLast uint64) (uint64, error) {
	if !l.armed.Load() {
		return l.LedgerLog.AppendBatch(ctx, subjects, data, expectedLast)
	}
	l.mu.Lock()
	f := clean
	if l.calls < len(l.plan) {
		f = l.plan[l.calls]
	}
	l.calls++
	l.mu.Unlock()
	switch f {
	case failedNotPersisted:
		return 0, inDoubt("connection lost before the commit")
	case storageFull:
		return 0, engine.Errorf(engine.KindUnavailable, "StorageFull", "injected: no space left on device").Marked(natslog.ErrStorageFull)
	case wrongLastSequence:
		l.mu.Lock()
		l.foreign++
		key := fmt.Sprintf("foreign-%d", l.foreign)
		l.mu.Unlock()
		if err := foreignAt(l.LedgerLog, 1, expectedLast, key); err != nil {
			return 0, err
		}
	case applyFailed:
		l.applyFail.Store(expectedLast+1, struct{}{})
	case stalledLeader:
		// A leader without quorum counts an uncommitted batch: the refusal
		// names a sequence the log never holds, so it is in doubt, not
		// another writer's win.
		return 0, engine.Wrap(engine.KindConflict, "WrongLastSequence",
			&natslog.WrongLastSequenceError{Expected: expectedLast, Actual: expectedLast + 3, Known: true}, "injected")
	case partlyPersisted:
		// Not something an atomic batch does; the sequencer must not rely
		// on it either.
		if _, err := l.LedgerLog.AppendBatch(ctx, subjects[:1], data[:1], expectedLast); err != nil {
			return 0, err
		}
		return 0, inDoubt("connection lost after part of the batch")
	}
	last, err := l.LedgerLog.AppendBatch(ctx, subjects, data, expectedLast)
	if err != nil {
		return last, err
	}
	switch f {
	case failedPersisted:
		return 0, inDoubt("connection lost after the commit")
	case ackLost:
		time.Sleep(20 * time.Millisecond) // the ack is late, then lost: not an assertion
		return 0, inDoubt("no answer before the deadline")
	}
	return last, nil
}

// applyFault makes the store's apply fail for the round the plan marked.
func (l *faultLog) applyFault(entries []*engine.Entry) error {
	if _, ok := l.applyFail.LoadAndDelete(entries[0].Seqno); ok {
		return errors.New("injected: pebble write failed")
	}
	return nil
}

// gatedPut is put whose first execution says it started, then waits.
type gatedPut struct {
	put
	once             *sync.Once
	started, release chan struct{}
}

func (g gatedPut) Execute(st engine.StateReader, f engine.Facts) (engine.Effect, error) {
	g.once.Do(func() { close(g.started); <-g.release })
	return g.put.Execute(st, f)
}

// Every append outcome, alone and in pairs across two pipelined rounds: no
// acknowledged entry lost, none duplicated, every request answered once
// with what the log holds, and the store equal to a fresh replay.
func TestEveryAppendOutcome(t *testing.T) {
	outcomes := []fault{clean, failedPersisted, failedNotPersisted, ackLost, wrongLastSequence, applyFailed, storageFull, stalledLeader}
	type tc struct{ plan []fault }
	var cases []tc
	for _, a := range outcomes {
		cases = append(cases, tc{[]fault{a}})
		for _, b := range outcomes {
			if a != clean {
				cases = append(cases, tc{[]fault{a, b}})
			}
		}
	}
	for _, c := range cases {
		name := fmt.Sprint(c.plan)
		t.Run(strings.Trim(strings.ReplaceAll(name, " ", "+"), "[]"), func(t *testing.T) {
			t.Parallel()
			runPlan(t, c.plan)
		})
	}
}

func runPlan(t *testing.T, plan []fault) {
	cfg := sequencer.DefaultConfig()
	cfg.SignInterval = time.Hour
	cfg.MaxBatch = 2 // one request and room for a signature: a round per request
	fl := &faultLog{plan: plan}
	cfg.Knobs = &sequencer.TestingKnobs{ApplyFault: fl.applyFault}
	h := startWith(t, cfg, 2, func(l *replica.LedgerLog) sequencer.Log {
		fl.LedgerLog = l
		return fl
	})
	fl.armed.Store(true)

	// r1's execution waits until r2 and r3 are queued: then each round is
	// executed while the one before it is in flight, so every outcome
	// meets a pipelined round.
	type answer struct {
		out sequencer.Outcome
		err error
	}
	keys := []string{"r1", "r2", "r3"}
	answers := make([]answer, len(keys))
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	submit := func(i int, cmd engine.Command) {
		defer wg.Done()
		out, err := h.seq.Submit(context.Background(), cmd)
		answers[i] = answer{out, err}
	}
	wg.Add(1)
	go submit(0, gatedPut{put{"r1", "mine"}, &once, started, release})
	<-started
	wg.Add(2)
	go submit(1, put{"r2", "mine"})
	go submit(2, put{"r3", "mine"})
	waitFor(t, func() bool { return h.seq.Queued() == 2 })
	close(release)
	wg.Wait()

	// Until the write path is healthy: a failed apply stops the sequencer
	// and is recovered by the restart path (a fresh store from the same
	// folder, caught up from the log, a sequencer of a higher view); a
	// storage refusal is recovered by a probe.
	restarts := 0
	heal := func() {
		waitFor(t, func() bool {
			select {
			case err := <-h.exit:
				if !errors.Is(err, sequencer.ErrApplyFailed) {
					t.Fatalf("plan %v: sequencer stopped: %v", plan, err)
				}
				restarts++
				h.store.Close()
				st, err := state.Open(h.dir)
				if err != nil {
					t.Fatal(err)
				}
				h.store = st
				if err := state.CatchUp(context.Background(), st, h.log); err != nil {
					t.Fatal(err)
				}
				h.run(cfg, st.Meta().View+1, fl)
			default:
			}
			return h.seq.Fault() == nil
		})
	}
	heal()
	// The write path works afterwards, once what is left of the plan has
	// been met by later writes.
	keys = append(keys, "after")
	answers = append(answers, answer{})
	for try := 0; ; try++ {
		out, err := h.seq.Submit(context.Background(), put{"after", "x"})
		answers[3] = answer{out, err}
		if err == nil {
			break
		}
		if try == len(plan) {
			t.Fatalf("plan %v: after the faults: %v", plan, err)
		}
		heal()
	}
	heal() // the write itself may have met an apply fault
	// A round sent while the one before it is applied, and that one's
	// apply fails, is answered from the log and folded by the restarted
	// sequencer's catch-up: its own apply fault is never met.
	want, orphans := countOf(plan, applyFailed), 0
	for i := 1; i < len(plan); i++ {
		if plan[i] == applyFailed && plan[i-1] == applyFailed {
			orphans++
		}
	}
	if restarts > want || restarts < want-orphans {
		t.Fatalf("plan %v: %d restarts, want %d (%d if a round was sent before the failed apply)", plan, restarts, want, want-orphans)
	}

	// Every answer agrees with the log, and nothing is in it twice.
	fresh := h.replayed()
	inLog := map[string][]uint64{}
	for s := uint64(1); s <= fresh.Meta().Seqno; s++ {
		e, err := h.log.Entry(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if k, _, ok := bytes.Cut(e.Input, []byte("=")); ok {
			inLog[string(k)] = append(inLog[string(k)], s)
		}
	}
	for i, k := range keys {
		a := answers[i]
		switch seqs := inLog[k]; {
		case len(seqs) > 1:
			t.Fatalf("plan %v: %s is in the log %d times (%v)", plan, k, len(seqs), seqs)
		case a.err == nil && (len(seqs) != 1 || seqs[0] != a.out.TxID.Seqno):
			t.Fatalf("plan %v: %s acknowledged at %v, the log has it at %v", plan, k, a.out.TxID, seqs)
		case a.err != nil && len(seqs) != 0:
			t.Fatalf("plan %v: %s refused (%v) but committed at %v", plan, k, a.err, seqs)
		case a.err != nil && !errors.Is(a.err, sequencer.ErrStopped) && !errors.Is(a.err, natslog.ErrStorage):
			t.Fatalf("plan %v: %s: unexpected refusal %v", plan, k, a.err)
		}
	}
	// Only a fault may refuse a request: otherwise all three commit.
	for i, k := range keys {
		if answers[i].err != nil && k != "after" && countOf(plan, applyFailed)+countOf(plan, storageFull) == 0 {
			t.Fatalf("plan %v: %s refused: %v", plan, k, answers[i].err)
		}
	}
	if fresh.Tree().Root() != h.store.Tree().Root() || fresh.Meta() != h.store.Meta() {
		t.Fatalf("plan %v: store at %+v, replay at %+v", plan, h.store.Meta(), fresh.Meta())
	}
}

func countOf(plan []fault, f fault) int {
	n := 0
	for _, p := range plan {
		if p == f {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds (state, not time, decides).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// flakySigner fails while broken is set.
type flakySigner struct {
	sequencer.RootSigner
	broken atomic.Bool
}

func (f *flakySigner) SignRoot(root engine.Digest, tx engine.TxID, iat time.Time) ([]byte, error) {
	if f.broken.Load() {
		return nil, errors.New("injected: HSM unreachable")
	}
	return f.RootSigner.SignRoot(root, tx, iat)
}

// A failing signer is a fault: entries already executed commit, later
// writes are refused at once with SignerFailed, and once the signer works
// the probe signs the tail and writes resume.
func TestFailingSignerIsAFault(t *testing.T) {
	cfg := sequencer.DefaultConfig()
	cfg.SignEvery = 1 // every round wants a signature
	h := start(t, cfg, 1)
	h.stop()
	fs := &flakySigner{RootSigner: h.signer}
	fs.broken.Store(true)
	h.signer = fs
	h.run(cfg, 1, h.log)

	out, err := h.seq.Submit(context.Background(), put{"a", "1"})
	if err != nil {
		t.Fatal(err) // committed, unsigned
	}
	waitFor(t, func() bool { f := h.seq.Fault(); return f != nil && f.Code == sequencer.CodeSignerFailed })
	_, err = h.seq.Submit(context.Background(), put{"b", "1"})
	if !errors.Is(err, sequencer.ErrUnwritable) || engine.AsError(err).Code != sequencer.CodeSignerFailed {
		t.Fatalf("while the signer fails: %v", err)
	}
	if m := h.store.Meta(); m.LastSignature >= out.TxID.Seqno {
		t.Fatalf("signed with a broken signer: %+v", m)
	}
	fs.broken.Store(false)
	waitFor(t, func() bool { return h.seq.Fault() == nil })
	if m := h.store.Meta(); m.LastSignature <= out.TxID.Seqno {
		t.Fatalf("tail not signed after the signer recovered: %+v", m)
	}
	if _, err := h.seq.Submit(context.Background(), put{"b", "1"}); err != nil {
		t.Fatal(err)
	}
}

// A round of which the log holds only the first entry: that request is
// answered as committed (its nonce is there), the others are executed
// again after it; nothing is lost or written twice.
func TestPartlyLandedRound(t *testing.T) {
	cfg := sequencer.DefaultConfig()
	cfg.SignInterval = time.Hour
	fl := &faultLog{plan: []fault{clean, partlyPersisted}}
	h := startWith(t, cfg, 2, func(l *replica.LedgerLog) sequencer.Log {
		fl.LedgerLog = l
		return fl
	})
	fl.armed.Store(true)
	// r1 executes alone and waits until r2 and r3 are queued: they make
	// the next round, of two entries, which lands only in part.
	keys := []string{"r1", "r2", "r3"}
	outs := make([]sequencer.Outcome, len(keys))
	errs := make([]error, len(keys))
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	submit := func(i int, cmd engine.Command) {
		defer wg.Done()
		outs[i], errs[i] = h.seq.Submit(context.Background(), cmd)
	}
	wg.Add(1)
	go submit(0, gatedPut{put{"r1", "mine"}, &once, started, release})
	<-started
	wg.Add(2)
	go submit(1, put{"r2", "mine"})
	go submit(2, put{"r3", "mine"})
	waitFor(t, func() bool { return h.seq.Queued() == 2 })
	close(release)
	wg.Wait()
	for i, k := range keys {
		if errs[i] != nil {
			t.Fatalf("%s: %v", k, errs[i])
		}
		e, err := h.log.Entry(context.Background(), outs[i].TxID.Seqno)
		if err != nil {
			t.Fatal(err)
		}
		if string(e.Input) != k+"=mine" {
			t.Fatalf("%s answered at %v, which holds %q", k, outs[i].TxID, e.Input)
		}
	}
	// r2 and r3 were queued in either order; together with r1 they fill
	// three places in a row.
	if a, b := min(outs[1].TxID.Seqno, outs[2].TxID.Seqno), max(outs[1].TxID.Seqno, outs[2].TxID.Seqno); a != outs[0].TxID.Seqno+1 || b != a+1 {
		t.Fatalf("answers %v %v %v", outs[0].TxID, outs[1].TxID, outs[2].TxID)
	}
	fl.mu.Lock()
	calls := fl.calls
	fl.mu.Unlock()
	if calls != 3 {
		t.Fatalf("%d appends, want 3 (r1; r2+r3, in part; the other again)", calls)
	}
	fresh := h.replayed()
	if fresh.Meta() != h.store.Meta() || fresh.Tree().Root() != h.store.Tree().Root() {
		t.Fatalf("store at %+v, replay at %+v", h.store.Meta(), fresh.Meta())
	}
}

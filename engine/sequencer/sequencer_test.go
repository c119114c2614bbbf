package sequencer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/merkle"
	"github.com/gavelhq/gavel/engine/natslog/natstest"
	"github.com/gavelhq/gavel/engine/receipt"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/engine/state"
)

// put writes one key; it refuses to overwrite an existing one, so that
// re-execution after a foreign write is observable.
type put struct{ key, value string }

func (p put) Kind() engine.EntryKind { return engine.KindStatement }
func (p put) Input() []byte          { return []byte(p.key + "=" + p.value) }
func (p put) Execute(st engine.StateReader, f engine.Facts) (engine.Effect, error) {
	if _, ok, err := st.Get("test", p.key); err != nil {
		return engine.Effect{}, err
	} else if ok {
		return engine.Effect{}, engine.Errorf(engine.KindConflict, "KeyExists", "%s exists", p.key)
	}
	res, _ := json.Marshal(map[string]string{"txid": f.TxID.String()})
	return engine.Effect{Writes: engine.WriteSet{{Table: "test", Key: p.key, Value: []byte(p.value)}}, Result: res}, nil
}

type harness struct {
	t      *testing.T
	nc     *nats.Conn // the replica user's connection, for raw publishes
	log    *replica.LedgerLog
	store  *state.Store
	seq    *sequencer.Sequencer
	stop   func()
	exit   chan error // Run's result
	dir    string     // the store's folder
	signer sequencer.RootSigner
}

type signer struct{ s *receipt.Signer }

func (s signer) SignRoot(root engine.Digest, tx engine.TxID, iat time.Time) ([]byte, error) {
	return s.s.SignRoot(root, tx, iat, "test", "ledger")
}

func start(t *testing.T, cfg sequencer.Config, view uint64) *harness {
	return startWith(t, cfg, view, nil)
}

// startWith is start with the sequencer's log wrapped (nil: the real one).
func startWith(t *testing.T, cfg sequencer.Config, view uint64, wrap func(*replica.LedgerLog) sequencer.Log) *harness {
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	nc := c.ConnectReplica(0)
	node, err := replica.LoadOrCreateNodeIdentity(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	log, err := replica.NewLedgerLog(nc, c.JetStream(nc), node.Signer())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "state")
	store, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	store.SetLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	id, err := replica.LoadOrCreateIdentity(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := receipt.NewSigner(id.Key, id.Cert)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, nc: nc, log: log, store: store, dir: dir, signer: signer{rs}}
	var seqLog sequencer.Log = log
	if wrap != nil {
		seqLog = wrap(log)
	}
	h.run(cfg, view, seqLog)
	t.Cleanup(func() { h.stop(); h.store.Close() })
	// The genesis entry trusts the node, so the log's entries are
	// authenticated when the sequencer catches up.
	if _, err := h.seq.Submit(context.Background(), exec.Genesis{Node: node.Record()}); err != nil {
		t.Fatal(err)
	}
	return h
}

// run starts a sequencer of view on the harness's store.
func (h *harness) run(cfg sequencer.Config, view uint64, log sequencer.Log) {
	h.seq = sequencer.New(cfg, view, h.store, log, h.signer, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	exit := make(chan error, 1)
	done := make(chan struct{})
	seq := h.seq
	go func() { exit <- seq.Run(ctx); close(done) }()
	h.exit = exit
	h.stop = func() { cancel(); <-done }
}

// replayed is h's log caught up into a fresh store: what another replica
// or an auditor would fold from it.
func (h *harness) replayed() *state.Store {
	h.t.Helper()
	fresh, err := state.Open(h.t.TempDir())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { fresh.Close() })
	if err := state.CatchUp(context.Background(), fresh, h.log); err != nil {
		h.t.Fatal(err)
	}
	return fresh
}

// submitted is one answer of submitAll.
type submitted struct {
	tx  engine.TxID
	err error
}

// submitAll submits put k<i> = value for every i below n, all at once, and
// returns each one's answer by i.
func (h *harness) submitAll(n int, value string) []submitted {
	answers := make([]submitted, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := h.seq.Submit(context.Background(), put{fmt.Sprintf("k%d", i), value})
			answers[i] = submitted{out.TxID, err}
		}()
	}
	wg.Wait()
	return answers
}

func TestGroupCommitAnswersEveryRequestOnce(t *testing.T) {
	cfg := sequencer.DefaultConfig()
	cfg.SignEvery = 100
	h := start(t, cfg, 1)
	const n = 3000
	answers := h.submitAll(n, "v")
	// Stopped, the sequencer signs its tail and appends nothing more while
	// its log and store are compared.
	h.stop()
	seen := map[uint64]bool{}
	for _, a := range answers {
		if a.err != nil {
			t.Fatal(a.err)
		}
		if a.tx.View != 1 || seen[a.tx.Seqno] {
			t.Fatalf("txid %v repeated or in the wrong view", a.tx)
		}
		seen[a.tx.Seqno] = true
	}
	rounds, entries := h.seq.Stats()
	if rounds >= n/2 {
		t.Fatalf("%d rounds for %d requests: no group commit", rounds, n)
	}
	// The log, replayed into a fresh store, has every entry and the same root,
	// and no stretch of more than SignEvery entries goes unsigned. Stopped
	// first (it signs the tail), so the log holds still while it is read.
	h.stop()
	fresh := h.replayed()
	_, entries = h.seq.Stats()
	if fresh.Meta().Seqno != entries || fresh.Tree().Root() != h.store.Tree().Root() {
		t.Fatalf("replayed %d entries (sequencer says %d), roots %x / %x", fresh.Meta().Seqno, entries, fresh.Tree().Root(), h.store.Tree().Root())
	}
	if v := fresh.Meta().Voids; v != 0 {
		t.Fatalf("%d entries do not authenticate (rounds are signed ahead of their append)", v)
	}
	lastSig := uint64(0)
	for s := uint64(1); s <= fresh.Meta().Seqno; s++ {
		rec, _, _ := fresh.Leaf(s)
		if rec.Kind == engine.KindSignature {
			if s-lastSig-1 > uint64(cfg.SignEvery)+uint64(cfg.MaxBatch) {
				t.Fatalf("%d unsigned entries before %d", s-lastSig-1, s)
			}
			lastSig = s
		}
	}
	if lastSig == 0 {
		t.Fatal("no signature entry")
	}
}

// appendForeign writes an entry as another sequencer would, after the
// store's last seqno.
func appendForeign(t *testing.T, h *harness, view uint64, key string) {
	if err := tryForeign(h, view, key); err != nil {
		t.Fatal(err)
	}
}

// tryForeign is appendForeign that may lose a race with the sequencer.
func tryForeign(h *harness, view uint64, key string) error {
	return foreignAt(h.log, view, h.store.Meta().Seqno, key)
}

// foreignAt appends a foreign entry after last.
func foreignAt(log *replica.LedgerLog, view, last uint64, key string) error {
	e := &engine.Entry{Kind: engine.KindStatement, View: view, Seqno: last + 1, TimeMillis: time.Now().UnixMilli(),
		Input: []byte("foreign"), Writes: engine.WriteSet{{Table: "test", Key: key, Value: []byte("foreign")}}}
	e.Seal()
	b, _ := e.Encode()
	_, err := log.AppendBatch(context.Background(), []string{e.Subject()}, [][]byte{b}, last)
	return err
}

func TestWrongLastSequenceCatchesUpAndReexecutes(t *testing.T) {
	cfg := sequencer.DefaultConfig()
	cfg.SignInterval = time.Hour
	h := start(t, cfg, 2)
	if _, err := h.seq.Submit(context.Background(), put{"a", "1"}); err != nil {
		t.Fatal(err)
	}
	// Another writer (a stale sequencer of the same or an older view) appends
	// behind this sequencer's back: its next batch is refused, it catches up
	// and re-executes against the state that includes the foreign write.
	appendForeign(t, h, 2, "b")
	if _, err := h.seq.Submit(context.Background(), put{"b", "2"}); engine.AsError(err).Code != "KeyExists" {
		t.Fatalf("re-execution did not see the foreign write: %v", err)
	}
	appendForeign(t, h, 1, "c")
	out, err := h.seq.Submit(context.Background(), put{"d", "3"})
	if err != nil {
		t.Fatal(err)
	}
	if out.TxID.Seqno != 5 {
		t.Fatalf("d landed at %v, want seqno 5 after genesis, a, b(foreign), c(foreign)", out.TxID)
	}
	v, ok, _ := h.store.Get("test", "b")
	if !ok || string(v) != "foreign" {
		t.Fatalf("b = %q", v)
	}
}

func TestHigherViewMakesTheSequencerStepDown(t *testing.T) {
	cfg := sequencer.DefaultConfig()
	cfg.SignInterval = time.Hour
	h := start(t, cfg, 2)
	if _, err := h.seq.Submit(context.Background(), put{"a", "1"}); err != nil {
		t.Fatal(err)
	}
	appendForeign(t, h, 3, "x")
	_, err := h.seq.Submit(context.Background(), put{"y", "1"})
	if !errors.Is(err, sequencer.ErrNotPrimary) {
		t.Fatalf("stale sequencer wrote after a newer view: %v", err)
	}
	// It has stopped: later requests are refused at once, not left hanging.
	if _, err := h.seq.Submit(context.Background(), put{"z", "1"}); !errors.Is(err, sequencer.ErrStopped) {
		t.Fatalf("after stepping down: %v", err)
	}
	if _, ok, _ := h.store.Get("test", "y"); ok {
		t.Fatal("y was written")
	}
}

func TestRejectedCommandWritesNothing(t *testing.T) {
	cfg := sequencer.DefaultConfig()
	cfg.SignInterval = time.Hour
	h := start(t, cfg, 1)
	if _, err := h.seq.Submit(context.Background(), put{"a", "1"}); err != nil {
		t.Fatal(err)
	}
	before := h.store.Meta()
	_, err := h.seq.Submit(context.Background(), put{"a", "2"})
	if engine.AsError(err).Code != "KeyExists" || engine.KindOf(err) != engine.KindConflict {
		t.Fatalf("got %v", err)
	}
	if h.store.Meta() != before {
		t.Fatal("a rejected command moved the ledger")
	}
}

func TestSignatureTimerSignsIdleTail(t *testing.T) {
	cfg := sequencer.DefaultConfig()
	cfg.SignInterval = 10 * time.Millisecond
	h := start(t, cfg, 1)
	out, err := h.seq.Submit(context.Background(), put{"a", "1"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.store.Meta().LastSignature <= out.TxID.Seqno {
		if time.Now().After(deadline) {
			t.Fatal("no signature after the interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	sig, ok, err := h.store.SignatureCovering(out.TxID.Seqno)
	if err != nil || !ok {
		t.Fatal(err)
	}
	root, _ := h.store.RootAt(sig.Seqno)
	path, _ := h.store.InclusionPath(out.TxID.Seqno, sig.Seqno)
	rec, _, _ := h.store.Leaf(out.TxID.Seqno)
	leaf := engine.LeafHash(rec.WriteSetDigest, engine.CommitEvidence(out.TxID, rec.Nonce), rec.ClaimsDigest)
	if merkle.ComputeRoot(leaf, path) != root {
		t.Fatal("path does not reach the signed root")
	}
}

// Foreign writes land while rounds are in flight: the round built on the
// refused one is executed again too, and every request is answered once,
// with what the log really holds.
func TestForeignWritesDuringPipelinedRounds(t *testing.T) {
	cfg := sequencer.DefaultConfig()
	cfg.SignEvery = 50
	h := start(t, cfg, 5)
	const n = 2000
	type answer struct {
		tx  engine.TxID
		err error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := h.seq.Submit(context.Background(), put{fmt.Sprintf("k%d", i), "mine"})
			answers[i] = answer{out.TxID, err}
		}()
		if i%400 == 200 {
			// A foreign writer takes a key someone is about to ask for,
			// retrying while it loses races with the sequencer.
			for tryForeign(h, 5, fmt.Sprintf("k%d", i+100)) != nil {
			}
		}
	}
	wg.Wait()
	fresh := h.replayed()
	seen := map[uint64]bool{}
	for i, a := range answers {
		key := fmt.Sprintf("k%d", i)
		v, ok, _ := fresh.Get("test", key)
		switch {
		case a.err == nil:
			if seen[a.tx.Seqno] {
				t.Fatalf("%s answered with a txid already given", key)
			}
			seen[a.tx.Seqno] = true
			if !ok || string(v) != "mine" {
				t.Fatalf("%s acknowledged at %v but the log holds %q", key, a.tx, v)
			}
		case engine.AsError(a.err).Code == "KeyExists":
			if !ok || string(v) != "foreign" {
				t.Fatalf("%s refused as existing, but the log holds %q", key, v)
			}
		default:
			t.Fatalf("%s: %v", key, a.err)
		}
	}
}

// Under steady load the interval still bounds how long an entry waits for
// a signature, even when SignEvery is never reached.
func TestSignatureIntervalUnderLoad(t *testing.T) {
	cfg := sequencer.DefaultConfig()
	cfg.SignEvery, cfg.SignInterval = 1_000_000, 20*time.Millisecond
	h := start(t, cfg, 1)
	deadline := time.Now().Add(400 * time.Millisecond)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				if _, err := h.seq.Submit(context.Background(), put{fmt.Sprintf("w%d-%d", w, i), "v"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	sigs := 0
	for s := uint64(1); s <= h.store.Meta().Seqno; s++ {
		if rec, _, _ := h.store.Leaf(s); rec.Kind == engine.KindSignature {
			sigs++
		}
	}
	if sigs < 2 { // the idle timer gives one at the end; more come from the interval under load
		t.Fatalf("%d signature entries in 400 ms of load with a 20 ms interval", sigs)
	}
}

// A signature made ahead of an append that did not come (its round was
// executed again) is never used for another message at that sequence.
func TestStalePresignIsNotUsed(t *testing.T) {
	h := start(t, sequencer.DefaultConfig(), 1)
	next := h.store.Meta().Seqno + 1
	stale := put{"k", "stale"}
	h.log.Presign(next, "gavel.ledger."+string(engine.KindStatement), stale.Input())
	h.log.Presign(next+1, "gavel.ledger.other", []byte("x"))
	for _, p := range []put{{"k", "v"}, {"l", "v"}} {
		if _, err := h.seq.Submit(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	h.stop()
	fresh := h.replayed()
	if m := fresh.Meta(); m.Seqno < next+1 || m.Voids != 0 {
		t.Fatalf("replayed to %d with %d void entries, want past %d and none", m.Seqno, m.Voids, next+1)
	}
}

// Rounds that stay open while the one before is in flight still keep to
// the batch limits: what does not fit waits for the next round.
func TestOpenRoundsKeepTheBatchLimit(t *testing.T) {
	cfg := sequencer.DefaultConfig()
	cfg.MaxBatch = 8
	var most, rounds atomic.Int64
	cfg.OnRound = func(r sequencer.RoundReport) {
		rounds.Add(1)
		if n := int64(r.Entries); n > most.Load() {
			most.Store(n) // the hook runs on the sequencer's goroutine
		}
	}
	h := start(t, cfg, 1)
	const n = 400
	seen := make(map[uint64]bool, n)
	for _, a := range h.submitAll(n, "v") {
		if a.err != nil {
			t.Fatal(a.err)
		}
		if seen[a.tx.Seqno] {
			t.Fatalf("seqno %d answered twice", a.tx.Seqno)
		}
		seen[a.tx.Seqno] = true
	}
	if m := most.Load(); m > int64(cfg.MaxBatch) {
		t.Fatalf("a round of %d entries, the limit is %d", m, cfg.MaxBatch)
	}
	if r := rounds.Load(); r < n/int64(cfg.MaxBatch-1) {
		t.Fatalf("%d rounds for %d requests of at most %d a round", r, n, cfg.MaxBatch-1)
	}
}

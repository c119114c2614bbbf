package sequencer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/state"
)

// Log is the ledger stream as the sequencer uses it.
type Log interface {
	// AppendBatch appends entries atomically after expectedLast and returns
	// the sequence of the last one. ErrWrongLastSequence (wrapped) means the
	// log had moved on; any other error may or may not have appended.
	AppendBatch(ctx context.Context, subjects []string, data [][]byte, expectedLast uint64) (uint64, error)
	state.LogReader
}

// ErrWrongLastSequence is what a Log returns when expectedLast was stale.
var ErrWrongLastSequence = errors.New("sequencer: log has moved past the expected last sequence")

// RootSigner signs Merkle roots for signature entries.
type RootSigner interface {
	SignRoot(root engine.Digest, tx engine.TxID, iat time.Time) ([]byte, error)
}

// Config holds the sequencer's settings; a zero field takes its default.
type Config struct {
	MaxBatch      int           // entries per atomic batch, signature included (≤ 1000)
	MaxBatchBytes int           // request bytes per atomic batch (one larger request goes alone)
	Linger        time.Duration // how long a round waits for more requests once it has one
	QueueSize     int           // pending requests before Submit pushes back
	SignEvery     int           // a signature entry at least every N entries
	SignInterval  time.Duration // ... and at most this long after an unsigned entry
	MaxAttempts   int           // executions of one round before giving up
}

// DefaultConfig returns the defaults of DESIGN.md.
func DefaultConfig() Config {
	return Config{MaxBatch: 1000, MaxBatchBytes: 8 << 20, QueueSize: 20000, SignEvery: 1000, SignInterval: 100 * time.Millisecond, MaxAttempts: 5}
}

// WithDefaults returns c with every zero (or out of range) field set to
// its default.
func (cfg Config) WithDefaults() Config {
	d := DefaultConfig()
	if cfg.MaxBatch <= 1 || cfg.MaxBatch > 1000 {
		cfg.MaxBatch = d.MaxBatch
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = d.MaxBatchBytes
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = d.MaxAttempts
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = d.QueueSize
	}
	if cfg.SignEvery <= 0 {
		cfg.SignEvery = d.SignEvery
	}
	if cfg.SignInterval <= 0 {
		cfg.SignInterval = d.SignInterval
	}
	return cfg
}

// Outcome is the answer to a committed command.
type Outcome struct {
	TxID   engine.TxID
	Result []byte
}

type request struct {
	cmd      engine.Command
	done     chan result
	answered bool // touched only by the sequencer goroutine
}

func (r *request) reply(res result) {
	if !r.answered {
		r.answered = true
		r.done <- res
	}
}

// settled is a request answered without an entry of its own: execution
// refused it, or the ledger already holds it. It is answered once its
// round is decided, since a retried round may settle it differently.
type settled struct {
	req *request
	res result
}

type result struct {
	out Outcome
	err error
}

// Sequencer orders, executes and commits commands.
type Sequencer struct {
	cfg    Config
	store  *state.Store
	log    Log
	signer RootSigner
	now    func() time.Time
	logger *slog.Logger
	view   uint64

	queue   chan *request
	stopped chan struct{} // closed when Run returns
	carry   *request      // taken from the queue but left for the next round

	// Stats, for benchmarks: rounds committed, entries in them, and where
	// the sequencer's time went.
	rounds, entries atomic.Uint64
	timing          struct{ execute, append, apply atomic.Int64 }
}

// New builds a sequencer for view. The store must be caught up with the log.
func New(cfg Config, view uint64, store *state.Store, log Log, signer RootSigner, logger *slog.Logger) *Sequencer {
	cfg = cfg.WithDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	return &Sequencer{
		cfg: cfg, store: store, log: log, signer: signer, now: time.Now, logger: logger, view: view,
		queue: make(chan *request, cfg.QueueSize), stopped: make(chan struct{}),
	}
}

// View is the sequencer's view.
func (s *Sequencer) View() uint64 { return s.view }

// Submit queues a verified command and waits for its commit. It returns a
// typed error: Unavailable when the queue is full or the sequencer stopped.
func (s *Sequencer) Submit(ctx context.Context, cmd engine.Command) (Outcome, error) {
	req := &request{cmd: cmd, done: make(chan result, 1)}
	select {
	case <-s.stopped:
		return Outcome{}, errStopped
	default:
	}
	select {
	case s.queue <- req:
	default:
		return Outcome{}, engine.Errorf(engine.KindUnavailable, "Busy", "the sequencer queue is full; retry")
	}
	select {
	case r := <-req.done:
		return r.out, r.err
	case <-s.stopped:
		select {
		case r := <-req.done:
			return r.out, r.err
		default:
			return Outcome{}, errStopped
		}
	case <-ctx.Done():
		// The command may still commit; the caller gave up waiting.
		return Outcome{}, engine.Wrap(engine.KindUnavailable, "Timeout", ctx.Err(), "no answer before the deadline; the request may still commit")
	}
}

// Stats reports rounds and entries committed so far.
func (s *Sequencer) Stats() (rounds, entries uint64) { return s.rounds.Load(), s.entries.Load() }

// Timing is where the sequencer goroutine spent its time.
type Timing struct {
	Execute, Append, Apply time.Duration
}

// Timing reports the sequencer's cumulative time executing, appending to
// the log (until the ack) and applying to the state.
func (s *Sequencer) Timing() Timing {
	return Timing{time.Duration(s.timing.execute.Load()), time.Duration(s.timing.append.Load()), time.Duration(s.timing.apply.Load())}
}

// Run sequences until ctx ends. Requests still queued are refused.
func (s *Sequencer) Run(ctx context.Context) error {
	defer close(s.stopped)
	defer s.drain()
	batch := make([]*request, 0, s.cfg.MaxBatch)
	signTimer := time.NewTimer(time.Hour)
	signTimer.Stop()
	for {
		batch = batch[:0]
		if s.carry != nil {
			batch, s.carry = append(batch, s.carry), nil
		} else {
			if s.unsigned() > 0 {
				signTimer.Reset(s.cfg.SignInterval)
			}
			select {
			case <-ctx.Done():
				s.signTail()
				return ctx.Err()
			case req := <-s.queue:
				batch = append(batch, req)
			case <-signTimer.C:
			}
			signTimer.Stop()
		}
		batch = s.gather(ctx, batch)
		if err := s.round(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ee *engine.Error
			if errors.As(err, &ee) && ee.Code == "NotPrimary" {
				return err
			}
			s.logger.Warn("round failed", slog.Any("err", err))
		}
	}
}

// signTail signs entries not yet covered by a signature when the sequencer
// stops cleanly, so that every entry of a stopped service has a receipt.
func (s *Sequencer) signTail() {
	if s.unsigned() == 0 || s.signer == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.round(ctx, nil); err != nil {
		s.logger.Warn("final signature", slog.Any("err", err))
	}
}

// gather takes whatever else is queued, waiting up to Linger for more.
// A request that would take the batch past MaxBatchBytes waits in carry
// for the next round.
func (s *Sequencer) gather(ctx context.Context, batch []*request) []*request {
	limit := s.cfg.MaxBatch - 1 // room for a signature entry
	size := 0
	for _, r := range batch {
		size += len(r.cmd.Input())
	}
	take := func(req *request) bool {
		n := len(req.cmd.Input())
		if len(batch) > 0 && size+n > s.cfg.MaxBatchBytes {
			s.carry = req
			return false
		}
		size += n
		batch = append(batch, req)
		return true
	}
	var deadline <-chan time.Time
	if s.cfg.Linger > 0 && len(batch) > 0 {
		t := time.NewTimer(s.cfg.Linger)
		defer t.Stop()
		deadline = t.C
	}
	for len(batch) < limit {
		select {
		case req := <-s.queue:
			if !take(req) {
				return batch
			}
			continue
		default:
		}
		if deadline == nil {
			return batch
		}
		select {
		case req := <-s.queue:
			if !take(req) {
				return batch
			}
		case <-deadline:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

func (s *Sequencer) unsigned() uint64 {
	m := s.store.Meta()
	return m.Seqno - m.LastSignature
}

// round commits one batch: execute, publish, apply, answer. Every request
// in batch is answered before it returns.
func (s *Sequencer) round(ctx context.Context, batch []*request) error {
	var lastErr error
	for attempt := 0; attempt < s.cfg.MaxAttempts; attempt++ {
		t0 := time.Now()
		entries, owners, answered := s.execute(batch)
		s.timing.execute.Add(int64(time.Since(t0)))
		if len(entries) == 0 {
			s.settle(answered)
			return nil
		}
		meta := s.store.Meta()
		subjects := make([]string, len(entries))
		data := make([][]byte, len(entries))
		for i, e := range entries {
			b, err := e.Encode()
			if err != nil {
				s.failAll(batch, engine.Wrap(engine.KindInternal, "InternalError", err, "entry does not encode"))
				return err
			}
			subjects[i], data[i] = e.Subject(), b
		}
		t1 := time.Now()
		_, err := s.log.AppendBatch(ctx, subjects, data, meta.Seqno)
		t2 := time.Now()
		s.timing.append.Add(int64(t2.Sub(t1)))
		if err == nil {
			err := s.store.Apply(entries)
			s.timing.apply.Add(int64(time.Since(t2)))
			if err != nil {
				// The batch is durable; the state is behind. Catch up from the log.
				s.logger.Error("apply after commit", slog.Any("err", err))
				if cerr := state.CatchUp(ctx, s.store, s.log); cerr != nil {
					// Durable all the same: answer, and let the next round's
					// expected-last-sequence check force another catch-up.
					s.answer(entries, owners)
					s.settle(answered)
					return cerr
				}
			}
			s.answer(entries, owners)
			s.settle(answered)
			return nil
		}
		lastErr = err
		// Refused or ambiguous: learn what the log holds now.
		if cerr := state.CatchUp(ctx, s.store, s.log); cerr != nil {
			s.failAll(batch, engine.Wrap(engine.KindUnavailable, "LogUnavailable", cerr, "the ledger stream is unavailable"))
			return fmt.Errorf("append: %w; catch-up: %v", err, cerr)
		}
		if s.landed(entries) {
			s.answer(entries, owners)
			s.settle(answered)
			return nil
		}
		if m := s.store.Meta(); m.View > s.view {
			e := engine.Errorf(engine.KindUnavailable, "NotPrimary", "a sequencer in view %d has written; this one (view %d) steps down", m.View, s.view)
			s.failAll(batch, e)
			return e
		}
		if ctx.Err() != nil {
			break
		}
		s.logger.Info("re-executing round", slog.Int("attempt", attempt+1), slog.Any("err", err))
	}
	e := engine.Wrap(engine.KindUnavailable, "CommitFailed", lastErr, "the batch could not be committed")
	s.failAll(batch, e)
	return e
}

// execute runs the batch's commands in order against the state as it will
// be after each one, and appends a signature entry when one is due.
// owners[i] is the request that entries[i] answers (nil for signatures).
func (s *Sequencer) execute(batch []*request) ([]*engine.Entry, []*request, []settled) {
	meta := s.store.Meta()
	now := s.now().UnixMilli()
	if now < meta.TimeMillis {
		now = meta.TimeMillis
	}
	overlay := newOverlay(s.store)
	entries := make([]*engine.Entry, 0, len(batch)+1)
	owners := make([]*request, 0, len(batch)+1)
	var done []settled
	next := meta.Seqno + 1
	for _, req := range batch {
		tx := engine.TxID{View: s.view, Seqno: next}
		eff, err := req.cmd.Execute(overlay, engine.Facts{TxID: tx, Time: time.UnixMilli(now).UTC()})
		if err != nil {
			done = append(done, settled{req, result{err: err}})
			continue
		}
		if eff.Replayed {
			done = append(done, settled{req, result{out: Outcome{Result: eff.Result}}})
			continue
		}
		e := &engine.Entry{Kind: req.cmd.Kind(), View: s.view, Seqno: next, TimeMillis: now,
			Nonce: newNonce(), Input: req.cmd.Input(), Writes: eff.Writes, ClaimsDigest: eff.ClaimsDigest, Result: eff.Result}
		e.Seal()
		overlay.apply(e.Writes)
		entries = append(entries, e)
		owners = append(owners, req)
		next++
	}
	unsigned := meta.Seqno - meta.LastSignature + uint64(len(entries))
	due := unsigned >= uint64(max(s.cfg.SignEvery, 1)) ||
		(unsigned > 0 && len(batch) == 0) // the sign timer fired
	if due && s.signer != nil {
		sig, err := s.signatureEntry(meta, entries, next, now)
		if err != nil {
			s.logger.Error("signature entry", slog.Any("err", err))
		} else {
			entries = append(entries, sig)
			owners = append(owners, nil)
		}
	}
	return entries, owners, done
}

// signatureEntry signs the root of the tree that ends just before seqno.
func (s *Sequencer) signatureEntry(meta state.Meta, pending []*engine.Entry, seqno uint64, now int64) (*engine.Entry, error) {
	tree := s.store.Tree()
	for _, e := range pending {
		tree.Append(e.Leaf(), nil)
	}
	if tree.Size() != seqno { // leaf 0 is CCF's zero leaf
		return nil, fmt.Errorf("tree has %d leaves before seqno %d", tree.Size(), seqno)
	}
	tx := engine.TxID{View: s.view, Seqno: seqno}
	cose, err := s.signer.SignRoot(tree.Root(), tx, time.UnixMilli(now))
	if err != nil {
		return nil, err
	}
	e := &engine.Entry{Kind: engine.KindSignature, View: s.view, Seqno: seqno, TimeMillis: now, Nonce: newNonce(),
		Writes: engine.WriteSet{{Table: engine.TableSignatures, Key: "", Value: cose}}}
	e.Seal()
	return e, nil
}

// landed reports whether the log holds exactly these entries (their nonces
// are random, so a match is ours).
func (s *Sequencer) landed(entries []*engine.Entry) bool {
	rec, ok, err := s.store.Leaf(entries[0].Seqno)
	return err == nil && ok && rec.Nonce == entries[0].Nonce && rec.View == entries[0].View
}

func (s *Sequencer) answer(entries []*engine.Entry, owners []*request) {
	s.rounds.Add(1)
	s.entries.Add(uint64(len(entries)))
	for i, e := range entries {
		if owners[i] != nil {
			owners[i].reply(result{out: Outcome{TxID: e.TxID(), Result: e.Result}})
		}
	}
}

func (s *Sequencer) settle(done []settled) {
	for _, d := range done {
		d.req.reply(d.res)
	}
}

// failAll answers every request of the batch that is still waiting.
func (s *Sequencer) failAll(batch []*request, err error) {
	for _, r := range batch {
		r.reply(result{err: err})
	}
}

var errStopped = engine.Errorf(engine.KindUnavailable, "ShuttingDown", "the sequencer stopped")

func (s *Sequencer) drain() {
	if s.carry != nil {
		s.carry.reply(result{err: errStopped})
		s.carry = nil
	}
	for {
		select {
		case r := <-s.queue:
			r.reply(result{err: errStopped})
		default:
			return
		}
	}
}

func newNonce() engine.Digest {
	var n engine.Digest
	rand.Read(n[:])
	return n
}

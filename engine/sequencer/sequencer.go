package sequencer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/merkle"
	"github.com/gavelhq/gavel/engine/state"
)

// Log is the ledger stream as the sequencer uses it.
type Log interface {
	// AppendBatch appends entries atomically after expectedLast and returns
	// the sequence of the last one. Its outcome is acknowledged (nil error),
	// refused (natslog.ErrWrongLastSequence, natslog.ErrStorage…: not in the
	// log) or in doubt (any other error). The sequencer resolves every error
	// by catching up from the log and looking for its entries, so a refusal
	// that did persist is still answered as committed; a storage refusal
	// also makes it fail fast and probe (see Fault).
	AppendBatch(ctx context.Context, subjects []string, data [][]byte, expectedLast uint64) (uint64, error)
	state.LogReader
}

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
	Knobs         *TestingKnobs // fault injection for tests; nil in production

	// OnRound is told of each committed round (report.go); nil: nobody.
	OnRound func(RoundReport)
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

// RangeError is a setting outside its range.
type RangeError struct {
	Field    string // the Config field, e.g. "MaxBatch"
	Value    any
	Min, Max any
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("%s %v is out of range %v..%v", e.Field, e.Value, e.Min, e.Max)
}

// Validate reports the first field out of its range as a *RangeError.
// Unlike WithDefaults it takes every field as given, zero included, so it
// judges a complete config (DefaultConfig with changes) and clamps nothing.
func (cfg Config) Validate() error {
	ints := []struct {
		field       string
		v, min, max int
	}{
		{"MaxBatch", cfg.MaxBatch, 2, 1000}, // one request and its signature
		{"MaxBatchBytes", cfg.MaxBatchBytes, 1 << 10, 64 << 20},
		{"QueueSize", cfg.QueueSize, 1, 1_000_000},
		{"SignEvery", cfg.SignEvery, 1, 1_000_000},
		{"MaxAttempts", cfg.MaxAttempts, 1, 100},
	}
	for _, c := range ints {
		if c.v < c.min || c.v > c.max {
			return &RangeError{Field: c.field, Value: c.v, Min: c.min, Max: c.max}
		}
	}
	durations := []struct {
		field       string
		v, min, max time.Duration
	}{
		{"Linger", cfg.Linger, 0, time.Second},
		{"SignInterval", cfg.SignInterval, time.Millisecond, 24 * time.Hour},
	}
	for _, c := range durations {
		if c.v < c.min || c.v > c.max {
			return &RangeError{Field: c.field, Value: c.v, Min: c.min, Max: c.max}
		}
	}
	return nil
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
	// lastSigAt is when the sequencer last made a signature entry.
	lastSigAt time.Time

	// Stats, for benchmarks: rounds committed, entries in them, and where
	// the sequencer's time went.
	rounds, entries atomic.Uint64
	timing          struct{ execute, append, apply atomic.Int64 }

	health    health
	signerErr error // the last signature attempt's failure, nil once one works
	probing   bool  // the next round is a probe of a faulty write path
	// exit is why Run returned, set before stopped is closed.
	exit      error
	stoppedAt time.Time
}

// New builds a sequencer for view. The store must be caught up with the log.
func New(cfg Config, view uint64, store *state.Store, log Log, signer RootSigner, logger *slog.Logger) *Sequencer {
	cfg = cfg.WithDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	return &Sequencer{
		cfg: cfg, store: store, log: log, signer: signer, now: time.Now, logger: logger, view: view,
		queue: make(chan *request, cfg.QueueSize), stopped: make(chan struct{}), lastSigAt: time.Now(),
	}
}

// View is the sequencer's view.
func (s *Sequencer) View() uint64 { return s.view }

// Submit queues a verified command and waits for its commit. It returns a
// typed error: Unavailable when the queue is full, the sequencer stopped
// (ErrStopped) or the write path is faulty (ErrUnwritable, at once).
func (s *Sequencer) Submit(ctx context.Context, cmd engine.Command) (Outcome, error) {
	req := &request{cmd: cmd, done: make(chan result, 1)}
	select {
	case <-s.stopped:
		return Outcome{}, s.stoppedError()
	default:
	}
	if err := s.health.refusal(time.Now(), s.signer != nil); err != nil {
		return Outcome{}, err
	}
	select {
	case s.queue <- req:
	default:
		return Outcome{}, engine.Errorf(engine.KindUnavailable, "Busy", "the sequencer queue is full; retry").Marked(ErrBusy)
	}
	select {
	case r := <-req.done:
		return r.out, r.err
	case <-s.stopped:
		select {
		case r := <-req.done:
			return r.out, r.err
		default:
			return Outcome{}, s.stoppedError()
		}
	case <-ctx.Done():
		// The command may still commit; the caller gave up waiting.
		return Outcome{}, engine.Wrap(engine.KindUnavailable, "Timeout", ctx.Err(), "no answer before the deadline; the request may still commit")
	}
}

// Fault is why the write path cannot write now, or nil. A stopped
// sequencer's fault is SequencerStopped unless it shut down cleanly.
func (s *Sequencer) Fault() *Fault {
	select {
	case <-s.stopped:
		if s.exit != nil && !errors.Is(s.exit, context.Canceled) {
			return &Fault{Code: CodeSequencerStopped, Message: "the sequencer stopped: " + s.exit.Error(), Since: s.stoppedAt, Err: s.exit}
		}
	default:
	}
	return s.health.fault.Load()
}

// Queued is how many requests wait in the queue.
func (s *Sequencer) Queued() int { return len(s.queue) }

// stoppedError is what requests get from a sequencer that has stopped.
// It may only be called once stopped is closed.
func (s *Sequencer) stoppedError() error { return s.stopErrorFor(s.exit) }

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
//
// Rounds are pipelined: while one round's batch waits for its ack, the
// next round executes on top of the state it will leave. If the round in
// flight does not land, both are executed again from the log's state.
func (s *Sequencer) Run(ctx context.Context) (err error) {
	defer func() {
		s.exit, s.stoppedAt = err, time.Now()
		s.drain(s.stopErrorFor(err))
		close(s.stopped)
	}()
	batch := make([]*request, 0, s.cfg.MaxBatch)
	signTimer := time.NewTimer(time.Hour)
	signTimer.Stop()
	probeTimer := time.NewTimer(time.Hour)
	probeTimer.Stop()
	var inflight *flight
	for {
		if ctx.Err() != nil {
			if inflight != nil {
				ok, err := s.land(inflight)
				if isFatal(err) {
					return err
				}
				if !ok {
					s.failAll(inflight.batch, errStopped)
				}
			}
			s.signTail()
			return ctx.Err()
		}
		batch = batch[:0]
		switch {
		case s.carry != nil:
			batch, s.carry = append(batch, s.carry), nil
		case inflight != nil:
			// Never wait for requests while a round is in flight: land it
			// when nothing else is queued.
			select {
			case req := <-s.queue:
				batch = append(batch, req)
			default:
				ok, err := s.land(inflight)
				failed := inflight.batch
				inflight = nil
				if isFatal(err) {
					return err
				}
				if !ok {
					if err := s.recover(ctx, failed, err); err != nil {
						return err
					}
				}
				continue
			}
		default:
			if s.unsigned() > 0 {
				signTimer.Reset(s.cfg.SignInterval)
			}
			// While faulty, probe by appending a signature entry (which
			// also signs the tail left unsigned by the fault).
			var probe <-chan time.Time
			if s.health.fault.Load() != nil && s.signer != nil {
				probeTimer.Reset(time.Until(time.Unix(0, s.health.retryAt.Load())))
				probe = probeTimer.C
			}
			select {
			case <-ctx.Done():
				continue
			case req := <-s.queue:
				batch = append(batch, req)
			case <-signTimer.C:
			case <-probe:
				s.probing = true
			}
			signTimer.Stop()
			probeTimer.Stop()
		}
		batch = s.gather(ctx, batch)
		own := slices.Clone(batch) // batch is reused; a round keeps its own
		b := s.storeBase()
		if inflight != nil {
			b = inflight.after
		}
		p, err := s.execute(own, b)
		if err != nil {
			s.failAll(own, err)
			continue
		}
		if inflight != nil {
			ok, err := s.land(inflight)
			if isFatal(err) {
				// p was executed on state the store does not have: it was
				// never sent, so refusing its requests loses nothing.
				s.failAll(own, s.stopErrorFor(err))
				return err
			}
			if !ok {
				failed := append(inflight.batch, own...)
				inflight = nil
				if err := s.recover(ctx, failed, err); err != nil {
					return err
				}
				continue
			}
			// p was built on the round just landed; read the store now.
			p.overlay.base = s.store
			inflight = nil
		}
		if len(p.entries) == 0 {
			s.settle(p.answered)
			continue
		}
		inflight = s.launch(p)
	}
}

func isFatal(err error) bool { return errors.Is(err, ErrFatal) }

// recover re-runs requests whose round did not land, synchronously, from
// the state the log holds. It returns an error only when the sequencer must
// stop (another sequencer has taken over, or its state is unknown).
func (s *Sequencer) recover(ctx context.Context, batch []*request, cause error) error {
	if errors.Is(cause, ErrNotPrimary) {
		s.failAll(batch, cause)
		return cause
	}
	if code, msg, isFault := faultOf(cause); isFault {
		// Fail fast: a storage fault does not clear by retrying now.
		s.health.set(code, msg, cause, s.logger)
		s.failAll(batch, cause)
		return nil
	}
	s.logger.Info("re-executing after a refused round", slog.Int("requests", len(batch)), slog.Any("err", cause))
	// Two rounds' requests may not fit one batch: commit them in order,
	// in rounds within the batch limits.
	for len(batch) > 0 {
		n := s.fit(batch)
		err := s.round(ctx, batch[:n])
		if errors.Is(err, ErrNotPrimary) || isFatal(err) {
			s.failAll(batch[n:], s.stopErrorFor(err))
			return err
		}
		if err != nil {
			if f := s.health.fault.Load(); f != nil {
				// Fail fast: the rest would meet the same fault.
				s.failAll(batch[n:], f.Error())
				return nil
			}
			s.logger.Warn("round failed", slog.Any("err", err))
		}
		batch = batch[n:]
	}
	return nil
}

// fit is how many of the requests one round takes: at most MaxBatch-1 (room
// for a signature entry) and MaxBatchBytes of input, and at least one.
func (s *Sequencer) fit(batch []*request) int {
	size := 0
	for i, r := range batch {
		size += len(r.cmd.Input())
		if i > 0 && (i == s.cfg.MaxBatch-1 || size > s.cfg.MaxBatchBytes) {
			return i
		}
	}
	return len(batch)
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

// base is the ledger a round executes on top of: the store, or the store
// and the round in flight.
type base struct {
	reader  engine.StateReader
	seqno   uint64       // last seqno
	time    int64        // engine time of the last entry (ms)
	lastSig uint64       // seqno of the last signature entry
	tree    *merkle.Tree // leaves 0..seqno
}

func (s *Sequencer) storeBase() base {
	m := s.store.Meta()
	return base{reader: s.store, seqno: m.Seqno, time: m.TimeMillis, lastSig: m.LastSignature, tree: s.store.Tree()}
}

// prepared is an executed round, ready to append.
type prepared struct {
	batch    []*request
	entries  []*engine.Entry
	owners   []*request // owners[i] is answered by entries[i]; nil for signatures
	answered []settled  // refused or replayed: answered once the round lands
	expected uint64     // the log's last sequence before these entries
	after    base       // the ledger once they are in
	overlay  *overlay   // after.reader
	subjects []string
	data     [][]byte
}

// flight is a prepared round whose append has been sent.
type flight struct {
	*prepared
	done chan error
}

// appendTimeout bounds one append, which outlives Run's context so that a
// round in flight at shutdown still lands.
const appendTimeout = 30 * time.Second

func (s *Sequencer) launch(p *prepared) *flight {
	f := &flight{prepared: p, done: make(chan error, 1)}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
		defer cancel()
		_, err := s.log.AppendBatch(ctx, p.subjects, p.data, p.expected)
		f.done <- err
	}()
	return f
}

// land waits for a flight's ack and folds it into the state, answering its
// requests. It reports false when its entries are not in the log; those
// requests are then still unanswered. Landed with an ErrFatal error means
// the round is committed and answered but the store could not apply it:
// the sequencer must stop.
func (s *Sequencer) land(f *flight) (bool, error) {
	t0 := time.Now()
	err := <-f.done
	t1 := time.Now()
	s.timing.append.Add(int64(t1.Sub(t0)))
	if err == nil {
		aerr := s.apply(f.entries)
		s.timing.apply.Add(int64(time.Since(t1)))
		if aerr != nil {
			// Unknown state is fatal: a round executed on top of this one
			// would be built on writes the store does not hold.
			first, last := f.entries[0].Seqno, f.entries[len(f.entries)-1].Seqno
			err := engine.Wrap(engine.KindInternal, "ApplyFailed", aerr,
				"entries %d..%d are committed but could not be applied to the state", first, last).Marked(ErrApplyFailed)
			// Faulty from now on, before anyone hears of the stop.
			s.health.set(CodeSequencerStopped, err.Error(), err, s.logger)
			s.answer(f.entries, f.owners)
			s.settle(f.answered)
			return true, err
		}
		s.answer(f.entries, f.owners)
		s.settle(f.answered)
		s.wrote()
		s.report(f, t1.Sub(t0), time.Since(t1))
		return true, nil
	}
	// Refused or ambiguous: learn what the log holds now.
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	if cerr := state.CatchUp(ctx, s.store, s.log); cerr != nil {
		return false, engine.Wrap(engine.KindUnavailable, CodeLogUnavailable, cerr,
			"the ledger stream could not be read back after a failed append (%v); the request may have been committed", err).Marked(ErrLogUnavailable)
	}
	if s.landed(f.entries) {
		s.answer(f.entries, f.owners)
		s.settle(f.answered)
		s.wrote()
		s.report(f, t1.Sub(t0), 0)
		return true, nil
	}
	if verr := s.checkView(); verr != nil {
		return false, verr
	}
	return false, err
}

// apply folds a committed round into the store.
func (s *Sequencer) apply(entries []*engine.Entry) error {
	if k := s.cfg.Knobs; k != nil && k.ApplyFault != nil {
		if err := k.ApplyFault(entries); err != nil {
			return err
		}
	}
	return s.store.Apply(entries)
}

// wrote records a round in the log: the write path works, unless the
// signer does not.
func (s *Sequencer) wrote() {
	if s.signerErr != nil {
		s.health.set(CodeSignerFailed, "signature entries cannot be made: "+s.signerErr.Error(), s.signerErr, s.logger)
		return
	}
	s.health.clear(s.logger)
}

// checkView refuses to go on once a sequencer of a newer view has written.
func (s *Sequencer) checkView() error {
	if m := s.store.Meta(); m.View > s.view {
		return engine.Errorf(engine.KindUnavailable, "NotPrimary", "a sequencer in view %d has written; this one (view %d) steps down", m.View, s.view).Marked(ErrNotPrimary)
	}
	return nil
}

// round commits one batch synchronously from the store's state, executing
// it again after each refusal. Every request in batch is answered before
// it returns. A fault (storage, an unreadable log) ends it at once.
func (s *Sequencer) round(ctx context.Context, batch []*request) error {
	var lastErr error
	for attempt := 0; attempt < s.cfg.MaxAttempts; attempt++ {
		if err := s.checkView(); err != nil {
			s.failAll(batch, err)
			return err
		}
		p, err := s.execute(batch, s.storeBase())
		if err != nil {
			s.failAll(batch, err)
			return err
		}
		if len(p.entries) == 0 {
			s.settle(p.answered)
			return nil
		}
		ok, err := s.land(s.launch(p))
		if ok {
			return err // nil, or fatal with every request answered
		}
		lastErr = err
		if errors.Is(err, ErrNotPrimary) {
			s.failAll(batch, err)
			return err
		}
		if code, msg, isFault := faultOf(err); isFault {
			s.health.set(code, msg, err, s.logger)
			s.failAll(batch, err)
			return err
		}
		if ctx.Err() != nil {
			break
		}
		s.logger.Info("re-executing round", slog.Int("attempt", attempt+1), slog.Any("err", err))
	}
	e := engine.Wrap(engine.KindUnavailable, CodeCommitFailed, lastErr, "the batch could not be committed").Marked(ErrCommitFailed)
	code, msg, _ := faultOf(e)
	s.health.set(code, msg, e, s.logger)
	s.failAll(batch, e)
	return e
}

// execute runs the batch's commands in order on top of b, each seeing the
// writes of those before it, and appends a signature entry when one is due.
func (s *Sequencer) execute(batch []*request, b base) (*prepared, error) {
	t0 := time.Now()
	defer func() { s.timing.execute.Add(int64(time.Since(t0))) }()
	now := max(s.now().UnixMilli(), b.time)
	facts := func(seqno uint64) engine.Facts {
		return engine.Facts{TxID: engine.TxID{View: s.view, Seqno: seqno}, Time: time.UnixMilli(now).UTC()}
	}
	p := &prepared{batch: batch, expected: b.seqno, overlay: newOverlay(b.reader)}
	tree := b.tree.Clone()
	next := b.seqno + 1
	for _, req := range batch {
		eff, err := req.cmd.Execute(p.overlay, facts(next))
		if err != nil {
			p.answered = append(p.answered, settled{req, result{err: err}})
			continue
		}
		if eff.Replayed {
			p.answered = append(p.answered, settled{req, result{out: Outcome{Result: eff.Result}}})
			continue
		}
		e := &engine.Entry{Kind: req.cmd.Kind(), View: s.view, Seqno: next, TimeMillis: now,
			Nonce: newNonce(), Input: req.cmd.Input(), Writes: eff.Writes, ClaimsDigest: eff.ClaimsDigest, Result: eff.Result}
		e.Seal()
		p.overlay.apply(e.Writes)
		tree.Append(e.Leaf(), nil)
		p.entries = append(p.entries, e)
		p.owners = append(p.owners, req)
		next++
	}
	lastSig := b.lastSig
	unsigned := next - 1 - b.lastSig
	// Sign every SignEvery entries, and no later than SignInterval after
	// the last signature while entries wait (the sign timer covers an idle
	// sequencer, this covers a busy one).
	// A probe while faulty signs even an already signed root: it is the
	// write that finds out whether the log takes writes again.
	due := unsigned >= uint64(s.cfg.SignEvery) ||
		(unsigned > 0 && (len(batch) == 0 || time.Since(s.lastSigAt) >= s.cfg.SignInterval)) ||
		(s.probing && len(p.entries) == 0)
	s.probing = false
	if due && s.signer != nil {
		// Leaf 0 is CCF's zero leaf: the tree has next leaves before seqno next.
		cose, err := s.signer.SignRoot(tree.Root(), facts(next).TxID, time.UnixMilli(now))
		if err != nil {
			if s.signerErr == nil {
				s.logger.Error("signature entry", slog.Any("err", err))
			}
			s.signerErr = engine.Wrap(engine.KindUnavailable, CodeSignerFailed, err, "the service key cannot sign").Marked(ErrSignerFailed)
			if len(p.entries) == 0 {
				// Nothing else to write: the fault shows now, not at a landing.
				s.wrote()
			}
		} else {
			s.signerErr = nil
			e := &engine.Entry{Kind: engine.KindSignature, View: s.view, Seqno: next, TimeMillis: now, Nonce: newNonce(),
				Writes: engine.WriteSet{{Table: engine.TableSignatures, Key: "", Value: cose}}}
			e.Seal()
			tree.Append(e.Leaf(), nil)
			p.entries = append(p.entries, e)
			p.owners = append(p.owners, nil)
			lastSig = next
			s.lastSigAt = time.Now()
			next++
		}
	}
	p.after = base{reader: p.overlay, seqno: next - 1, time: now, lastSig: lastSig, tree: tree}
	p.subjects = make([]string, len(p.entries))
	p.data = make([][]byte, len(p.entries))
	for i, e := range p.entries {
		b, err := e.Encode()
		if err != nil {
			return nil, engine.Wrap(engine.KindInternal, "InternalError", err, "entry does not encode")
		}
		p.subjects[i], p.data[i] = e.Subject(), b
	}
	return p, nil
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

var errStopped = engine.Errorf(engine.KindUnavailable, "ShuttingDown", "the sequencer stopped").Marked(ErrStopped)

// stopErrorFor is the answer of requests left when Run returns exit.
func (s *Sequencer) stopErrorFor(exit error) error {
	if exit == nil || errors.Is(exit, context.Canceled) {
		return errStopped
	}
	return engine.Wrap(engine.KindUnavailable, CodeSequencerStopped, exit, "the sequencer stopped; the replica restarts it from the log").Marked(ErrStopped)
}

func (s *Sequencer) drain(err error) {
	if s.carry != nil {
		s.carry.reply(result{err: err})
		s.carry = nil
	}
	for {
		select {
		case r := <-s.queue:
			r.reply(result{err: err})
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

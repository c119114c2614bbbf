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
	"github.com/gavelhq/gavel/engine/state"
)

// Log is the ledger stream as the sequencer uses it.
type Log interface {
	// AppendBatch appends entries atomically after expectedLast and returns
	// the sequence of the last one (an ack naming another sequence is taken
	// as in doubt and resolved from the log). Its outcome is acknowledged (nil error),
	// refused (natslog.ErrWrongLastSequence, natslog.ErrStorage…: not in the
	// log) or in doubt (any other error). The sequencer resolves every error
	// by catching up from the log and looking for its entries, so a refusal
	// that did persist is still answered as committed; a storage refusal
	// also makes it fail fast and probe (see Fault).
	AppendBatch(ctx context.Context, subjects []string, data [][]byte, expectedLast uint64) (uint64, error)
	state.LogReader
}

// Presigner is a Log that signs each message for the sequence it will
// have (the replica's LedgerLog). The sequencer has a round's messages
// signed on other goroutines as they are executed, while the round before
// is in flight, so that its append need not sign them once that round
// lands; AppendBatch signs whatever was not presigned by then.
type Presigner interface {
	Presign(seq uint64, subject string, data []byte)
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
	// NodeID is the replica's node: the round holding an entry that
	// retires it is the sequencer's last (ErrRetired). Empty: never.
	NodeID string
	Knobs  *TestingKnobs // fault injection for tests; nil in production

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
	// nonce is the nonce of the request's first entry, kept for every
	// execution of it (core.execute); the sequencer goroutine's only.
	nonce    engine.Digest
	hasNonce bool
}

func (r *request) reply(res result) {
	if !r.answered {
		r.answered = true
		r.done <- res
	}
}

type result struct {
	out Outcome
	err error
}

// Sequencer orders, executes and commits commands. It is the driver of the
// core (core.go): its goroutine owns the queue, the clock, the log, the
// store and the replies; every decision is the core's.
type Sequencer struct {
	cfg    Config
	store  *state.Store
	log    Log
	signer RootSigner
	now    func() time.Time
	logger *slog.Logger
	view   uint64
	core   *core

	queue   chan *request
	stopped chan struct{} // closed when Run returns
	// appendWait bounds the appends launched from now on (0:
	// appendTimeout); the final signature sets it short.
	appendWait time.Duration
	carry      *request // taken from the queue but left for the next round

	// Stats, for benchmarks: rounds committed, entries in them, and where
	// the sequencer's time went.
	rounds, entries atomic.Uint64
	timing          struct{ execute, append, apply atomic.Int64 }

	done    inflight  // the answer of the flight's append
	sentAt  time.Time // when the flight was appended
	health  health
	probing bool // the next round is a probe of a faulty write path
	// exit is why Run returned, set before stopped is closed.
	exit      error
	stoppedAt time.Time
}

// New builds a sequencer for view (the caller's: a new term, or the
// lease's). The store must be caught up with the log.
func New(cfg Config, view uint64, store *state.Store, log Log, signer RootSigner, logger *slog.Logger) *Sequencer {
	cfg = cfg.WithDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	return &Sequencer{
		cfg: cfg, store: store, log: log, signer: signer, now: time.Now, logger: logger, view: view,
		core:  newCore(cfg, view, signer != nil, time.Now()),
		queue: make(chan *request, cfg.QueueSize), stopped: make(chan struct{}),
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
func (s *Sequencer) stoppedError() error { return stopErrorFor(s.exit) }

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
// next round executes on top of the state it will leave, and keeps taking
// requests until that ack arrives (so under load a round holds what
// arrived during one append, up to the batch limits). If the round in
// flight does not land, both are executed again from the log's state,
// before anything new is taken from the queue.
func (s *Sequencer) Run(ctx context.Context) (err error) {
	var pending *round // open on top of the flight
	defer func() {
		if pending != nil {
			// Executed but never sent: not in the log.
			s.failAll(pending.reqs, stopErrorFor(err))
		}
		s.exit, s.stoppedAt = err, time.Now()
		s.drain(stopErrorFor(err))
		close(s.stopped)
	}()
	batch := make([]*request, 0, s.cfg.MaxBatch)
	signTimer := time.NewTimer(time.Hour)
	signTimer.Stop()
	probeTimer := time.NewTimer(time.Hour)
	probeTimer.Stop()
	for {
		if ctx.Err() != nil {
			if s.core.flight != nil {
				landed, err := s.land(pending)
				if err != nil {
					pending = nil // answered by land
					return err
				}
				if !landed {
					pending = nil // its requests wait in redo
				}
			}
			s.reply(s.core.failRedoWith(errStopped))
			s.signTail()
			return ctx.Err()
		}
		if s.core.flight != nil {
			// Build the next round until the flight's ack arrives.
			var first *request
			if s.carry != nil && pending == nil {
				first, s.carry = s.carry, nil
			}
			if first == nil {
				var queue <-chan *request
				if s.carry == nil {
					queue = s.queue
				}
				t0 := time.Now()
				select {
				case first = <-queue:
				case a := <-s.done:
					s.timing.append.Add(int64(time.Since(t0)))
					r := pending
					pending = nil
					// r is sent as soon as the flight has landed (landWith).
					if _, err := s.landWith(a, r, true); err != nil {
						return err
					}
					continue
				}
			}
			n, size := 0, 0
			if pending != nil {
				n, size = len(pending.reqs), pending.size
			}
			batch = s.gather(ctx, append(batch[:0], first), n, size, false)
			switch {
			case len(batch) == 0:
			case pending == nil:
				own := slices.Clone(batch)
				p, oerr := s.open(own)
				if oerr != nil {
					s.failAll(own, oerr)
					p = nil
				}
				pending = p
			default:
				if err := s.extend(pending, batch); err != nil {
					s.failAll(pending.reqs, err)
					s.failAll(batch, err)
					pending = nil
				}
			}
			continue
		}
		if s.core.redo != nil {
			// Requests whose round did not land, one synchronous round at
			// a time, from the state the log holds.
			if err := s.commit(s.core.takeRedo(), true); err != nil {
				return err
			}
			continue
		}
		batch = batch[:0]
		if s.carry != nil {
			batch, s.carry = append(batch, s.carry), nil
		} else {
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
		batch = s.gather(ctx, batch, 0, 0, true)
		own := slices.Clone(batch) // batch is reused; a round keeps its own
		r, err := s.plan(own, false)
		if err != nil {
			s.failAll(own, err)
			continue
		}
		s.send(r)
	}
}

// nonces draws n fresh nonces with one read of the system's randomness.
func nonces(n int) []engine.Digest {
	buf := make([]byte, 32*n)
	rand.Read(buf)
	out := make([]engine.Digest, n)
	for i := range out {
		copy(out[i][:], buf[32*i:])
	}
	return out
}

// open has the core execute reqs as a round on top of the flight, left
// open for more requests until the flight lands.
func (s *Sequencer) open(reqs []*request) (*round, error) {
	t0 := time.Now()
	defer func() { s.timing.execute.Add(int64(time.Since(t0))) }()
	r, err := s.core.open(planInput{ledger: s.storeBase(), now: s.now(), reqs: reqs, nonces: nonces(len(reqs) + 1)})
	if err != nil {
		return nil, err
	}
	return r, s.presign(r)
}

// extend has the core execute reqs into the open round r.
func (s *Sequencer) extend(r *round, reqs []*request) error {
	t0 := time.Now()
	defer func() { s.timing.execute.Add(int64(time.Since(t0))) }()
	if err := s.core.extend(r, reqs, s.now(), nonces(len(reqs)+1)); err != nil {
		return err
	}
	return s.presign(r)
}

// presignChunk is the fewest new messages worth a signing goroutine.
const presignChunk = 16

// presign encodes the open round's new entries and, when the log signs
// its messages and enough are new, has them signed on a goroutine of
// their own. The append does not wait for it: whatever is not signed when
// the round is sent, AppendBatch signs (so a starved goroutine costs at
// most a chunk signed twice, never a later append).
func (s *Sequencer) presign(r *round) error {
	if err := r.encode(); err != nil {
		return err
	}
	p, ok := s.log.(Presigner)
	if !ok || len(r.data)-r.presigned < presignChunk {
		return nil
	}
	from := r.presigned
	subjects, data, first := r.subjects[from:], r.data[from:], r.entries[from].Seqno
	r.presigned = len(r.data)
	go func() {
		for i := range data {
			if r.sent.Load() {
				return
			}
			p.Presign(first+uint64(i), subjects[i], data[i])
		}
	}()
	return nil
}

// seal closes an open round, signs it when the core asks and encodes it.
func (s *Sequencer) seal(r *round) error {
	t0 := time.Now()
	defer func() { s.timing.execute.Add(int64(time.Since(t0))) }()
	s.core.seal(r, s.now(), false)
	return s.finish(r)
}

// send appends r, or answers it at once when it has nothing to append.
func (s *Sequencer) send(r *round) {
	if len(r.entries) == 0 {
		s.reply(r.settled)
		return
	}
	s.launch(r)
}

// plan has the core plan a round of reqs on the applied ledger (or the
// flight), signs it when the core asks and encodes it.
func (s *Sequencer) plan(reqs []*request, redo bool) (*round, error) {
	t0 := time.Now()
	defer func() { s.timing.execute.Add(int64(time.Since(t0))) }()
	r, err := s.core.plan(planInput{ledger: s.storeBase(), now: s.now(), reqs: reqs, nonces: nonces(len(reqs) + 1), probe: s.probing, redo: redo})
	s.probing = false
	if err != nil {
		return nil, err
	}
	return r, s.finish(r)
}

// finish signs a sealed round when the core asks, and encodes it.
func (s *Sequencer) finish(r *round) error {
	if r.sign != nil {
		cose, err := s.signer.SignRoot(r.sign.root, r.sign.tx, r.sign.iat)
		if err != nil && s.core.signerErr == nil {
			s.logger.Error("signature entry", slog.Any("err", err))
		}
		if ferr := s.core.signed(r, cose, err); ferr != nil {
			return ferr
		}
		if err != nil && len(r.entries) == 0 {
			// Nothing else to write: the fault shows now, not at a landing.
			s.wrote()
		}
	}
	return r.encode()
}

// commit runs one round of reqs synchronously on the applied ledger: used
// to execute again what did not land, and for the final signature.
func (s *Sequencer) commit(reqs []*request, redo bool) error {
	r, err := s.plan(reqs, redo)
	if err != nil {
		s.failAll(reqs, err)
		return nil
	}
	if len(r.entries) == 0 {
		s.reply(r.settled)
		return nil
	}
	s.launch(r)
	_, err = s.land(nil)
	return err
}

// signTail signs entries not yet covered by a signature when the sequencer
// stops cleanly, so that every entry of a stopped service has a receipt.
func (s *Sequencer) signTail() {
	// A stopping sequencer does not wait out a stalled log: its tail is
	// signed by the next one (a restart's, or the successor's view change).
	s.appendWait = tailAppendTimeout
	for attempt := 0; attempt < s.cfg.MaxAttempts && s.unsigned() > 0 && s.signer != nil; attempt++ {
		if err := s.commit(nil, false); err != nil {
			s.logger.Warn("final signature", slog.Any("err", err))
			return
		}
	}
}

// gather takes batch and whatever else is queued, waiting up to Linger
// for more when linger is set, as far as the core's batch limits admit on
// top of a round of n requests holding size bytes. The request they do
// not admit waits in carry for the next round.
func (s *Sequencer) gather(ctx context.Context, batch []*request, n, size int, linger bool) []*request {
	in := batch
	batch = batch[:0]
	take := func(req *request) bool {
		more := len(req.cmd.Input())
		if !s.core.admits(n+len(batch), size, more) {
			s.carry = req
			return false
		}
		size += more
		batch = append(batch, req)
		return true
	}
	for _, req := range in {
		if !take(req) {
			return batch
		}
	}
	var deadline <-chan time.Time
	if linger && s.cfg.Linger > 0 && len(batch) > 0 {
		t := time.NewTimer(s.cfg.Linger)
		defer t.Stop()
		deadline = t.C
	}
	for n+len(batch) < s.cfg.MaxBatch-1 {
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

func (s *Sequencer) unsigned() uint64 { return s.store.Meta().Unsigned() }

func (s *Sequencer) storeBase() base {
	return base{reader: s.store, pos: s.store.Meta(), tree: s.store.Tree()}
}

// appendTimeout bounds one append, which outlives Run's context so that a
// round in flight at shutdown still lands.
const appendTimeout = 30 * time.Second

// tailAppendTimeout bounds each append of the final signature when the
// sequencer stops.
const tailAppendTimeout = 3 * time.Second

// inflight is the answer of the append in flight.
type inflight chan appendResult

type appendResult struct {
	last uint64
	err  error
}

// launch appends r on its own goroutine, so that the next round executes
// meanwhile.
func (s *Sequencer) launch(r *round) {
	r.sent.Store(true) // presigning stops: the append signs the rest
	s.core.sent(r)
	done := make(inflight, 1)
	s.done, s.sentAt = done, time.Now()
	wait := appendTimeout
	if s.appendWait > 0 {
		wait = s.appendWait
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		last, err := s.log.AppendBatch(ctx, r.subjects, r.data, r.expected)
		done <- appendResult{last, err}
	}()
}

// land waits for the flight's answer and takes it (landWith).
func (s *Sequencer) land(pending *round) (bool, error) {
	t0 := time.Now()
	a := <-s.done
	s.timing.append.Add(int64(time.Since(t0)))
	return s.landWith(a, pending, false)
}

// landWith does what the core makes of the flight's answer a: fold into
// the store, answer, record a fault. It reports whether the whole flight
// landed (so that pending, planned on top of it, stays valid); an error
// means Run must return: a newer view has written, or the round is
// committed but not applied (ErrFatal).
//
// With next, a landed flight's pending round is sealed and sent before
// the flight is folded into the store: the log is idle from the ack to
// the next append, and pending reads the flight's writes from its own
// overlay until it is rebased on the store.
func (s *Sequencer) landWith(a appendResult, pending *round, next bool) (bool, error) {
	t1 := time.Now()
	appendTook := t1.Sub(s.sentAt)
	err := s.core.acked(a.last, a.err)
	o := outcome{err: err}
	if err != nil {
		o = s.readBack(err)
	}
	flown := s.core.flight
	entries := flown.entries
	rd := s.core.advance(o, pending)
	var settled []answer // pending's own, once the flight is applied
	sent := false
	if next && rd.landed && rd.stop == nil && pending != nil {
		if err := s.seal(pending); err != nil {
			s.failAll(pending.reqs, err)
		} else if len(pending.entries) == 0 {
			settled = pending.settled
		} else {
			s.launch(pending)
			sent = true
		}
	}
	var applyTook time.Duration
	if rd.apply != nil {
		t2 := time.Now()
		aerr := s.apply(rd.apply)
		applyTook = time.Since(t2)
		s.timing.apply.Add(int64(applyTook))
		if aerr != nil {
			// Unknown state is fatal: a round executed on top of this one
			// would be built on writes the store does not hold.
			var refusals []answer
			var fatal error
			if sent {
				refusals, fatal = s.core.applyFailed(rd.apply, aerr, nil)
				refusals = append(refusals, s.orphan()...)
			} else {
				refusals, fatal = s.core.applyFailed(rd.apply, aerr, pending)
			}
			// Faulty from now on, before anyone hears of the stop.
			s.health.set(CodeSequencerStopped, fatal.Error(), fatal, s.logger)
			s.counted(rd.entries)
			s.reply(rd.answers)
			s.reply(refusals)
			return true, fatal
		}
	}
	if sent {
		pending.rebase(s.store)
	}
	s.counted(rd.entries)
	s.reply(rd.answers)
	s.reply(settled)
	switch {
	case rd.landed && rd.stop != nil:
		// The node's retirement landed: the last round of this sequencer.
		s.wrote()
		s.report(flown, appendTook, applyTook)
		return true, rd.stop
	case rd.landed:
		s.wrote()
		s.report(flown, appendTook, applyTook)
	case rd.stop != nil:
		return false, rd.stop
	case rd.fault != nil:
		code, msg, _ := faultOf(rd.fault)
		s.health.set(code, msg, rd.fault, s.logger)
	default:
		s.logger.Info("re-executing a round that did not land", slog.String("outcome", rd.kind),
			slog.Int("entries", len(entries)), slog.Int("landed", rd.entries), slog.Any("err", rd.retry))
	}
	return rd.landed, nil
}

// orphan waits for the flight sent on top of a round that could not be
// applied, and answers it by its ack (core.orphaned).
func (s *Sequencer) orphan() []answer {
	a := <-s.done
	err := s.core.acked(a.last, a.err)
	if err == nil {
		return s.core.orphaned(nil, nil)
	}
	// The store is not to be trusted now: read the log itself.
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	f := s.core.flight
	got := []logged{} // not nil: the log was read
	errEnough := errors.New("read enough")
	rerr := s.log.Range(ctx, f.expected+1, func(m engine.LedgerMsg) error {
		e, err := engine.DecodeEntry(m.Data)
		if err != nil {
			got = append(got, logged{}) // not ours
		} else {
			got = append(got, logged{ok: true, view: e.View, nonce: e.Nonce})
		}
		if len(got) == len(f.entries) {
			return errEnough
		}
		return nil
	})
	if rerr != nil && !errors.Is(rerr, errEnough) {
		return s.core.orphaned(err, nil)
	}
	return s.core.orphaned(err, got)
}

// readBack catches the store up with the log after a failed append and
// reads what the log holds where the flight's entries would be.
func (s *Sequencer) readBack(err error) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	o := outcome{err: err}
	if o.readErr = state.CatchUp(ctx, s.store, s.log); o.readErr != nil {
		return o
	}
	o.ledger = s.storeBase()
	for _, e := range s.core.flight.entries {
		rec, ok, rerr := s.store.Leaf(e.Seqno)
		if rerr != nil {
			// Not knowing is not "not landed": executing again could
			// write the request twice.
			o.readErr = rerr
			return o
		}
		if !ok {
			break
		}
		o.logged = append(o.logged, logged{ok: true, view: rec.View, nonce: rec.Nonce})
	}
	return o
}

// counted adds a landed round to the stats.
func (s *Sequencer) counted(entries int) {
	if entries > 0 {
		s.rounds.Add(1)
		s.entries.Add(uint64(entries))
	}
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
	if err := s.core.signerErr; err != nil {
		s.health.set(CodeSignerFailed, "signature entries cannot be made: "+err.Error(), err, s.logger)
		return
	}
	s.health.clear(s.logger)
}

func (s *Sequencer) reply(answers []answer) {
	for _, a := range answers {
		a.req.reply(a.res)
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
func stopErrorFor(exit error) error {
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
	s.reply(s.core.failRedoWith(err))
	for {
		select {
		case r := <-s.queue:
			r.reply(result{err: err})
		default:
			return
		}
	}
}

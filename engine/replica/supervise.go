package replica

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/engine/state"
)

// Codes of the replica's own write-path faults (the sequencer's are in
// package sequencer, the log's storage codes in natslog).
const (
	CodeRestarting    = "SequencerRestarting"
	CodeCatchUpFailed = "CatchUpFailed"
	CodeStateFailed   = "StateUnavailable"
)

// Restart backoff: the first retry soon, later ones every few seconds.
const (
	restartMin = 50 * time.Millisecond
	restartMax = 5 * time.Second
)

// errRestarting marks the refusals made while the write path is rebuilt.
var errRestarting = errors.New("replica: restarting the write path")

// WriteFault is why the replica cannot write now.
type WriteFault = sequencer.Fault

// replicaFault is the replica-level fault, set while the supervisor
// rebuilds the state and the sequencer.
type replicaFault struct {
	p atomic.Pointer[sequencer.Fault]
}

func (f *replicaFault) set(code, msg string, err error, logger *slog.Logger) {
	old := f.p.Load()
	since := time.Now()
	if old != nil && old.Code == code {
		since = old.Since
	} else {
		logger.Error("replica cannot write", slog.String("code", code), slog.String("reason", msg), slog.Any("err", err))
	}
	f.p.Store(&sequencer.Fault{Code: code, Message: msg, Since: since, Err: errors.Join(errRestarting, err)})
}

// WriteFault is why writes are refused now, or nil when the replica can
// write: its own restart, or its sequencer's fault.
func (r *Replica) WriteFault() *WriteFault {
	if f := r.storageFault(); f != nil {
		return f
	}
	if f := r.fault.p.Load(); f != nil {
		return f
	}
	return r.Sequencer().Fault()
}

// submit commits a verified command, refusing at once while the write
// path is faulty.
func (r *Replica) submit(ctx context.Context, cmd engine.Command) (out sequencer.Outcome, err error) {
	t0 := time.Now()
	defer func() { r.reportCommit(cmd.Kind(), t0, err) }()
	if f := r.storageFault(); f != nil {
		return sequencer.Outcome{}, storageErr(f, nil)
	}
	if f := r.fault.p.Load(); f != nil {
		return sequencer.Outcome{}, f.Error()
	}
	if !r.IsPrimary() {
		return sequencer.Outcome{}, notPrimary()
	}
	return r.Sequencer().Submit(ctx, cmd)
}

// supervise runs sequencers until ctx ends. A sequencer that stops with
// ErrFatal (its state is unknown) is replaced by the restart path: the
// pebble state re-opened, caught up from the log, and a new sequencer in
// a higher view. Unknown state is never executed on.
func (r *Replica) supervise(ctx context.Context, seq *sequencer.Sequencer) {
	for {
		err := seq.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, sequencer.ErrFatal) {
			// A newer view wrote (another sequencer): stay stopped, visibly.
			r.logger.Error("sequencer stopped", slog.Any("err", err))
			return
		}
		r.fault.set(CodeRestarting, "the sequencer stopped on unknown state; rebuilding it from the log", err, r.logger)
		for wait := restartMin; ; wait = min(2*wait, restartMax) {
			if seq, err = r.restart(ctx); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		old := r.fault.p.Swap(nil)
		r.logger.Info("sequencer restarted from the log", slog.Uint64("view", seq.View()),
			slog.Uint64("seqno", r.Store().Meta().Seqno), slog.Duration("after", time.Since(old.Since)))
	}
}

// restart re-opens the state, catches it up with the log and installs a
// new sequencer of a higher view.
func (r *Replica) restart(ctx context.Context) (*sequencer.Sequencer, error) {
	// Readers hold the read lock for as long as they use the store.
	r.mu.Lock()
	if r.store != nil {
		r.store.Close()
		r.store = nil
	}
	r.mu.Unlock()
	st, err := openState(r.cfg.DataDir)
	if err != nil {
		r.fault.set(CodeStateFailed, "the state store cannot be opened", err, r.logger)
		return nil, err
	}
	// Readers see the store only once it is caught up: catch-up may refold
	// the read model from empty, and a read in between would answer from a
	// partial one.
	if err := state.CatchUp(ctx, st, r.log); err != nil {
		st.Close()
		r.fault.set(CodeCatchUpFailed, "the state cannot be caught up with the log", err, r.logger)
		return nil, err
	}
	seq := sequencer.New(r.cfg.Sequencer, st.Meta().View+1, st, r.seqLog(), r.signer, r.logger.With("component", "sequencer"))
	r.mu.Lock()
	r.store, r.seq = st, seq
	r.mu.Unlock()
	return seq, nil
}

// reading returns the store for a read; done must be called when the read
// is over. While a restart has no store, it returns an Unavailable error.
func (r *Replica) reading() (*state.Store, func(), error) {
	r.mu.RLock()
	if r.store == nil {
		r.mu.RUnlock()
		return nil, func() {}, engine.Errorf(engine.KindUnavailable, CodeRestarting, "the state is being rebuilt from the log; retry").Marked(errRestarting)
	}
	return r.store, r.mu.RUnlock, nil
}

// read runs fn on the store under the read lock.
func read[T any](r *Replica, fn func(st *state.Store) (T, error)) (T, error) {
	st, done, err := r.reading()
	defer done()
	if err != nil {
		var zero T
		return zero, err
	}
	return fn(st)
}

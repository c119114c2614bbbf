package audit

import (
	"bytes"
	"context"
	"runtime"
	"sync/atomic"

	"github.com/gavelhq/gavel/engine"
)

// verified is the work on one message that AddAll runs ahead of the fold:
// its authentication against a snapshot of the trusted nodes, and a
// statement's stateless check.
type verified struct {
	seq uint64
	// auth is valid for the fold only while its set is still at
	// trustedVersion; otherwise the fold authenticates again.
	auth           engine.AuthenticatedMsg
	authenticated  bool
	trustedVersion uint64
	// entry and openErr are auth.Open's answer, decoded here once: opening
	// depends only on the message, so the fold need not decode it again.
	entry   *engine.Entry
	openErr error
	// The statement check; cmd and err are meaningful when input is set.
	input []byte
	facts engine.Facts
	cmd   engine.Command
	err   error
}

// preverify runs the statement check of m's entry, if it is a statement,
// off the fold: the check depends only on the entry's own bytes (input,
// txid and time), so any goroutine may run it. A message that does not
// decode is left to the fold, which reports it.
func (r *Replayer) preverify(m engine.LedgerMsg, trusted *engine.TrustedNodes) *verified {
	v := &verified{seq: m.Seq, trustedVersion: trusted.Version()}
	var e *engine.Entry
	var err error
	if a, aerr := trusted.Authenticate(m); aerr == nil {
		v.auth, v.authenticated = a, true
		v.entry, v.openErr = a.Open()
		e, err = v.entry, v.openErr
	} else if r.verifyStatement != nil {
		e, err = engine.DecodeEntry(m.Data)
	}
	if r.verifyStatement == nil || err != nil || e.Kind != engine.KindStatement {
		return v
	}
	v.facts = engine.Facts{TxID: e.TxID(), Time: e.Time()}
	v.input = e.Input
	v.cmd, v.err = r.verifyStatement(e.Input, v.facts)
	return v
}

// verifiedFor is the check run ahead for e, if it was run on these very
// bytes; otherwise the fold runs it itself.
func (r *Replayer) verifiedFor(e *engine.Entry, f engine.Facts) *verified {
	v := r.ahead
	if v == nil || v.input == nil || v.seq != e.Seqno || v.facts.TxID != f.TxID || !v.facts.Time.Equal(f.Time) || !bytes.Equal(v.input, e.Input) {
		return nil
	}
	return v
}

// AddAll replays every message read gives it, in order, with the
// statements' signature checks (the bulk of a replay's CPU) run by
// workers ahead of the fold; the fold itself stays sequential and decides
// exactly as Add does. after, when set, sees each message once it is
// added. read must call its function in log order, as natslog.Reader's
// Range does.
func (r *Replayer) AddAll(ctx context.Context, read func(fn func(engine.LedgerMsg) error) error, workers int, after func(engine.LedgerMsg)) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	type job struct {
		m    engine.LedgerMsg
		v    *verified
		done chan struct{}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Workers authenticate against the latest snapshot of the trusted
	// nodes the fold has published; the fold uses their answer only if its
	// set has not changed since.
	var snapshot atomic.Pointer[engine.TrustedNodes]
	snapshot.Store(r.trusted.Clone())
	work := make(chan *job, 64*workers)
	ordered := make(chan *job, 64*workers)
	for range workers {
		go func() {
			for j := range work {
				j.v = r.preverify(j.m, snapshot.Load())
				close(j.done)
			}
		}()
	}
	folded := make(chan error, 1)
	go func() {
		for j := range ordered {
			<-j.done
			r.ahead = j.v
			before := r.trusted.Version()
			err := r.Add(j.m)
			r.ahead = nil
			if r.trusted.Version() != before {
				snapshot.Store(r.trusted.Clone())
			}
			if err != nil {
				cancel(err)
				// Drain so the reader never blocks on a full queue.
				for range ordered {
				}
				folded <- err
				return
			}
			if after != nil {
				after(j.m)
			}
		}
		folded <- nil
	}()
	readErr := read(func(m engine.LedgerMsg) error {
		j := &job{m: m, done: make(chan struct{})}
		select {
		case ordered <- j:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		work <- j
		return nil
	})
	close(work)
	close(ordered)
	if err := <-folded; err != nil {
		return err // the fold's error, not the read it interrupted
	}
	return readErr
}

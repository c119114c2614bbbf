package sequencer

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
)

// Sentinels to test with errors.Is. Errors the sequencer returns are
// *engine.Error values marked with one of them (Kind and Code for the wire,
// the sentinel for control flow).
var (
	// ErrNotPrimary: a sequencer of a newer view has written; this one
	// stopped without writing.
	ErrNotPrimary = errors.New("sequencer: a newer view has written")
	// ErrRetired: an entry of this sequencer's round made its own node no
	// longer a Trusted service node (its retirement): that round is its
	// last, as anything it wrote after would not authenticate. The replica
	// hands the lease to a successor.
	ErrRetired = errors.New("sequencer: this replica's node is retired")
	// ErrStopped: the sequencer is not running (shut down, stepped down or
	// stopped by a fault); the request was not committed.
	ErrStopped = errors.New("sequencer: stopped")
	// ErrBusy: the queue is full; retry later.
	ErrBusy = errors.New("sequencer: queue full")
	// ErrLogUnavailable: the log could not be read back to resolve an
	// append; the request was not committed.
	ErrLogUnavailable = errors.New("sequencer: the log cannot be read")
	// ErrCommitFailed: every attempt to commit the round was refused.
	ErrCommitFailed = errors.New("sequencer: commit failed")
	// ErrSignerFailed: the root signer failed; entries go unsigned until it works.
	ErrSignerFailed = errors.New("sequencer: signer failed")
	// ErrUnwritable marks a refusal while the write path is faulty (see
	// Fault): the request was not attempted.
	ErrUnwritable = errors.New("sequencer: the write path is faulty")

	// ErrFatal: the sequencer's state is unknown and it stopped; the
	// replica must rebuild its state from the log and start a new
	// sequencer in a higher view (the restart path).
	ErrFatal = errors.New("sequencer: fatal")
	// ErrApplyFailed: a durably acknowledged round could not be applied to
	// the store. Its requests were answered (they are committed); nothing
	// later was executed on the stale state.
	ErrApplyFailed = fmt.Errorf("%w: apply of a committed round failed", ErrFatal)
)

// Codes of the write path's faults, as answers and /node/network show them.
const (
	CodeSequencerStopped = "SequencerStopped"
	CodeSignerFailed     = "SignerFailed"
	CodeLogUnavailable   = "LogUnavailable"
	CodeCommitFailed     = "CommitFailed"
)

// Fault is why the write path cannot write now. While a sequencer has one,
// Submit refuses at once with it (no 30 s hang) until the next probe.
type Fault struct {
	Code    string    // stable: StorageFull, TooManyOpenFiles, SignerFailed, SequencerStopped…
	Message string    // for people
	Since   time.Time // when it began
	Err     error     // the cause, for errors.Is
}

// Error is the refusal a request gets while f holds.
func (f *Fault) Error() error {
	return engine.Wrap(engine.KindUnavailable, f.Code, f.Err, "%s", f.Message).Marked(ErrUnwritable)
}

// Probe backoff while faulty: the first probe soon, later ones sparse.
const (
	probeMin = 100 * time.Millisecond
	probeMax = 5 * time.Second
)

// health is the sequencer's fault state, read by Submit on any goroutine.
type health struct {
	fault   atomic.Pointer[Fault]
	retryAt atomic.Int64 // unix nanos: a request may probe from then on
	misses  int          // consecutive failed probes (sequencer goroutine)
}

// refusal is the error Submit answers at once, or nil when a request may
// try. With a signer the sequencer probes by itself (a signature entry);
// without one, a request after the backoff is the probe.
func (h *health) refusal(now time.Time, selfProbing bool) error {
	f := h.fault.Load()
	if f == nil || (!selfProbing && now.UnixNano() >= h.retryAt.Load()) {
		return nil
	}
	return f.Error()
}

// set records a fault; the log hears of a new cause once, not per request.
func (h *health) set(code, msg string, cause error, logger *slog.Logger) {
	old := h.fault.Load()
	since := time.Now()
	if old != nil && old.Code == code {
		since = old.Since
	} else {
		logger.Error("write path faulty: refusing writes until a probe succeeds", slog.String("code", code), slog.String("reason", msg), slog.Any("err", cause))
	}
	h.fault.Store(&Fault{Code: code, Message: msg, Since: since, Err: cause})
	wait := min(probeMin<<min(h.misses, 10), probeMax)
	h.misses++
	h.retryAt.Store(time.Now().Add(wait).UnixNano())
}

// clear ends a fault after a successful write.
func (h *health) clear(logger *slog.Logger) {
	if old := h.fault.Swap(nil); old != nil {
		logger.Info("write path healthy again", slog.String("was", old.Code), slog.Duration("after", time.Since(old.Since)))
	}
	h.misses = 0
}

// faultOf classifies a round's failure: the code and message of a fault
// that should stop writes for a while, or ok false for a failure that a
// retry may cure at once.
func faultOf(err error) (code, msg string, ok bool) {
	switch {
	case errors.Is(err, natslog.ErrStorage):
		return natslog.StorageCode(err), "the ledger's storage refuses writes: " + causeText(err), true
	case errors.Is(err, ErrLogUnavailable):
		return CodeLogUnavailable, "the ledger stream cannot be read: " + causeText(err), true
	case errors.Is(err, natslog.ErrUnavailable):
		return CodeLogUnavailable, "the ledger stream is unavailable: " + causeText(err), true
	case errors.Is(err, ErrCommitFailed):
		return CodeCommitFailed, "rounds cannot be committed: " + causeText(err), true
	}
	return "", "", false
}

// causeText is the innermost useful text of err.
func causeText(err error) string {
	if e := engine.AsError(err); e.Err != nil {
		return e.Err.Error()
	}
	return err.Error()
}

// TestingKnobs inject faults into a real sequencer (cockroachdb's name for
// the idea). Nil fields do nothing; production leaves Knobs nil.
type TestingKnobs struct {
	// ApplyFault, when it returns an error, stands for the store failing
	// to apply an acknowledged round (the round is not applied).
	ApplyFault func(entries []*engine.Entry) error
}

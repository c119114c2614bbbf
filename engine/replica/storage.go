package replica

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/sequencer"
)

// How the embedded server's store is watched: JetStream answers no append
// once its file store has a write error (a full disk, no descriptors), so
// waiting for the ack would take the whole commit timeout. The watch reads
// the server's own health report instead, and once the cause has cleared
// reloads JetStream, which is what clears a file store's write error.
const (
	storageCheckEvery = 200 * time.Millisecond
	reloadMin         = 500 * time.Millisecond
	reloadMax         = 10 * time.Second
	// minFreeBytes is the free space a full store needs before a reload
	// is tried: room for the largest entry and some.
	minFreeBytes = 2*MaxEntryBytes + 1<<20
)

// storageWatch tracks the embedded ledger store's write error.
type storageWatch struct {
	srv    *server.Server
	dir    string // the JetStream store folder, for its free space
	logger *slog.Logger

	mu      sync.Mutex
	fault   *sequencer.Fault
	faulted chan struct{} // closed when a fault begins; appends then give up
}

func newStorageWatch(srv *server.Server, logger *slog.Logger) *storageWatch {
	return &storageWatch{srv: srv, dir: srv.StoreDir(), logger: logger, faulted: make(chan struct{})}
}

// current is the store's fault now, or nil.
func (w *storageWatch) current() (*sequencer.Fault, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fault, w.faulted
}

// writeError is the ledger stream's write error as the server reports it.
func (w *storageWatch) writeError() string {
	h := w.srv.Healthz(&server.HealthzOptions{Details: true})
	if h == nil {
		return ""
	}
	for _, e := range h.Errors {
		if e.Stream == natslog.LedgerStream && strings.Contains(e.Error, "write error") {
			return e.Error
		}
	}
	return ""
}

// run checks the store until ctx ends, reloading JetStream once a write
// error's cause has cleared.
func (w *storageWatch) run(ctx context.Context) {
	t := time.NewTicker(storageCheckEvery)
	defer t.Stop()
	var nextReload time.Time
	wait := reloadMin
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		text := w.writeError()
		f, _ := w.current()
		switch {
		case text == "" && f != nil:
			w.set(nil)
			w.logger.Info("ledger store writable again", slog.Duration("after", time.Since(f.Since)))
			wait = reloadMin
		case text == "":
		case f == nil:
			w.begin(text)
			nextReload = time.Now().Add(wait)
		case time.Now().After(nextReload):
			if errors.Is(f.Err, natslog.ErrStorageFull) && w.free() < minFreeBytes {
				nextReload = time.Now().Add(reloadMin) // cheap to check again
				continue
			}
			w.reload()
			wait = min(2*wait, reloadMax)
			nextReload = time.Now().Add(wait)
		}
	}
}

// begin records the write error text as the store's fault, once.
func (w *storageWatch) begin(text string) {
	cause := natslog.StorageCause(text)
	f := &sequencer.Fault{Code: natslog.StorageCode(cause), Message: "the ledger's store cannot write: " + text, Since: time.Now(), Err: cause}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fault != nil {
		return
	}
	w.fault = f
	close(w.faulted)
	w.logger.Error("ledger store cannot write: refusing writes until the cause clears", slog.String("code", f.Code), slog.String("err", text))
}

// checkNow looks for a write error at once (after a failed append, rather
// than at the next tick), and reports the fault if there is one.
func (w *storageWatch) checkNow() *sequencer.Fault {
	if text := w.writeError(); text != "" {
		w.begin(text)
	}
	f, _ := w.current()
	return f
}

func (w *storageWatch) set(f *sequencer.Fault) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if f != nil && w.fault == nil {
		close(w.faulted)
	}
	if f == nil && w.fault != nil {
		w.faulted = make(chan struct{})
	}
	w.fault = f
}

// free is the free space of the store's file system (0 if unknown).
func (w *storageWatch) free() uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(w.dir, &st); err != nil {
		return 0
	}
	return st.Bavail * uint64(st.Bsize)
}

// reload restarts JetStream in place (the NATS server and its connections
// stay), which re-opens the streams from disk without the write error.
func (w *storageWatch) reload() {
	if w.srv.JetStreamIsClustered() {
		return // a clustered stream recovers by its peers, not by a reload here
	}
	cfg := w.srv.JetStreamConfig()
	if cfg == nil {
		return
	}
	// The running config names the store with the folder EnableJetStream adds.
	if filepath.Base(cfg.StoreDir) == server.JetStreamStoreDir {
		cfg.StoreDir = filepath.Dir(cfg.StoreDir)
	}
	w.logger.Warn("reloading JetStream to clear the ledger store's write error")
	if err := w.srv.ShutdownJetStream(); err != nil {
		w.logger.Error("JetStream shutdown", slog.Any("err", err))
		return
	}
	if err := w.srv.EnableJetStream(cfg); err != nil {
		w.logger.Error("JetStream restart", slog.Any("err", err))
	}
}

// guardedLog is the ledger log as the sequencer writes it: an append is
// refused at once while the store has a write error, and one in flight
// when such an error begins stops waiting for an ack that will not come.
// Either way the error is a storage error; the sequencer resolves it by
// reading the log.
type guardedLog struct {
	*LedgerLog
	watch *storageWatch
}

func (g guardedLog) AppendBatch(ctx context.Context, subjects []string, data [][]byte, expectedLast uint64) (uint64, error) {
	f, faulted := g.watch.current()
	if f != nil {
		return 0, storageErr(f, nil)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-faulted:
			cancel()
		case <-ctx.Done():
		}
	}()
	last, err := g.LedgerLog.AppendBatch(ctx, subjects, data, expectedLast)
	if err != nil {
		if f := g.watch.checkNow(); f != nil {
			return 0, storageErr(f, err)
		}
	}
	return last, err
}

func storageErr(f *sequencer.Fault, cause error) error {
	return engine.Wrap(engine.KindUnavailable, f.Code, errors.Join(f.Err, cause), "%s", f.Message).Marked(f.Err)
}

// seqLog is the log the sequencer writes through.
func (r *Replica) seqLog() sequencer.Log {
	if r.watch == nil {
		return r.log
	}
	return guardedLog{r.log, r.watch}
}

// storageFault is the ledger store's fault now, or nil.
func (r *Replica) storageFault() *sequencer.Fault {
	if r.watch == nil {
		return nil
	}
	f, _ := r.watch.current()
	return f
}

// Start-up on a full disk: retry with backoff, and say so now and then.
const (
	spaceRetryMin = 250 * time.Millisecond
	spaceRetryMax = 10 * time.Second
	spaceLogEvery = 30 * time.Second
)

// isNoSpace reports whether a start-up failure is a full disk. Some layers
// (nats-server's start, JetStream answers) report the OS error as text.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		errors.Is(natslog.StorageCause(err.Error()), natslog.ErrStorageFull)
}

// waitForSpace runs start until it succeeds or fails for another reason
// than a full disk, sleeping between attempts (no spin, one log line per
// spaceLogEvery).
func waitForSpace(ctx context.Context, logger *slog.Logger, dir string, start func() (*Replica, error)) (*Replica, error) {
	wait := spaceRetryMin
	var logged time.Time
	for {
		r, err := start()
		if err == nil || !isNoSpace(err) || ctx.Err() != nil {
			if err == nil && !logged.IsZero() {
				logger.Info("disk space available again: started")
			}
			return r, err
		}
		if time.Since(logged) >= spaceLogEvery {
			logger.Error("the data folder's disk is full: waiting for space", slog.String("dir", dir), slog.Any("err", err))
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, spaceRetryMax)
	}
}

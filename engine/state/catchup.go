package state

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"

	"github.com/gavelhq/gavel/engine"
)

// LogReader streams the ledger from a sequence to its current end.
type LogReader interface {
	Range(ctx context.Context, from uint64, fn func(m engine.LedgerMsg) error) error
}

// catchUpChunk bounds the entries applied per pebble batch during replay.
const catchUpChunk = 1024

// CatchUp applies every message the log holds past the store's last
// seqno. Each is authenticated against the service nodes Trusted as of
// the entry before it (engine.TrustedNodes.OpenEntry) before it is decoded;
// one that is not an authenticated entry claiming its own place is folded
// as a void entry, logged at Error and counted (Store.Voids), and catch-up
// goes on after it. Signatures are checked ahead on every core, a chunk at
// a time, and again in order after an entry that changes the nodes.
func CatchUp(ctx context.Context, s *Store, log LogReader) error {
	if s.proj != nil {
		// A read model that does not reflect the state is refolded first:
		// Apply folds on top of it.
		if pos, err := s.proj.Position(s.Model()); err != nil || pos != s.Meta().Seqno {
			if err := s.refoldModel(ctx, log); err != nil {
				return err
			}
		}
	}
	trusted, err := engine.LoadTrustedNodes(s)
	if err != nil {
		return err
	}
	meta := s.Meta()
	var msgs []engine.LedgerMsg
	flush := func() error {
		entries := openChunk(trusted, msgs, &meta, s.logger)
		msgs = msgs[:0]
		err := s.Apply(entries)
		if errors.Is(err, ErrReadModel) {
			// The read model, not the state, is broken: refolded from the
			// log, the entries apply onto it.
			s.logger.Error("the read model cannot be folded; refolding it from the log", slog.Any("err", err))
			if err := s.refoldModel(ctx, log); err != nil {
				return err
			}
			err = s.Apply(entries)
		}
		return err
	}
	err = log.Range(ctx, meta.Seqno+1, func(m engine.LedgerMsg) error {
		msgs = append(msgs, m)
		if len(msgs) == catchUpChunk {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// openChunk authenticates and decodes msgs, the messages after at, against
// trusted (which it advances); a message that is not an authenticated
// entry claiming its own place becomes a void entry, logged at Error when
// logger is set.
func openChunk(trusted *engine.TrustedNodes, msgs []engine.LedgerMsg, at *Meta, logger *slog.Logger) []*engine.Entry {
	entries := make([]*engine.Entry, 0, len(msgs))
	ahead, version := authenticateAll(trusted, msgs)
	for i, m := range msgs {
		var e *engine.Entry
		var err error
		if m.Seq == 1 || trusted.Version() != version {
			e, err = trusted.OpenEntry(m)
		} else if err = ahead[i].err; err == nil {
			e, err = ahead[i].msg.Open()
		}
		if err != nil {
			e = engine.VoidEntry(m.Seq, at.View, at.TimeMillis, err)
			if logger != nil {
				logger.Error("void entry: the ledger holds a message that is not an authenticated entry; it is not applied",
					slog.Uint64("seq", m.Seq), slog.String("subject", m.Subject), slog.String("reason", e.VoidReason))
			}
		} else {
			trusted.Observe(e.Writes)
			at.View, at.TimeMillis = e.View, e.TimeMillis
		}
		entries = append(entries, e)
	}
	return entries
}

type authResult struct {
	msg engine.AuthenticatedMsg
	err error
}

// authenticateAll checks msgs' signatures against trusted as it is now, on
// every core, and returns the results with the set's version.
func authenticateAll(trusted *engine.TrustedNodes, msgs []engine.LedgerMsg) ([]authResult, uint64) {
	out := make([]authResult, len(msgs))
	workers := min(runtime.GOMAXPROCS(0), len(msgs)/64+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(msgs); i += workers {
				out[i].msg, out[i].err = trusted.Authenticate(msgs[i])
			}
		}()
	}
	wg.Wait()
	return out, trusted.Version()
}

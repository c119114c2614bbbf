package state

import (
	"context"
	"log/slog"

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
// goes on after it.
func CatchUp(ctx context.Context, s *Store, log LogReader) error {
	trusted, err := engine.LoadTrustedNodes(s)
	if err != nil {
		return err
	}
	meta := s.Meta()
	var chunk []*engine.Entry
	flush := func() error {
		err := s.Apply(chunk)
		chunk = chunk[:0]
		return err
	}
	err = log.Range(ctx, meta.Seqno+1, func(m engine.LedgerMsg) error {
		e, err := trusted.OpenEntry(m)
		if err != nil {
			e = engine.VoidEntry(m.Seq, meta.View, meta.TimeMillis, err)
			s.logger.Error("void entry: the ledger holds a message that is not an authenticated entry; it is not applied",
				slog.Uint64("seq", m.Seq), slog.String("subject", m.Subject), slog.String("reason", e.VoidReason))
		} else {
			trusted.Observe(e.Writes)
			meta.View, meta.TimeMillis = e.View, e.TimeMillis
		}
		chunk = append(chunk, e)
		if len(chunk) == catchUpChunk {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

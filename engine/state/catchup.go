package state

import (
	"context"
	"fmt"

	"github.com/gavelhq/gavel/engine"
)

// LogReader streams the ledger from a sequence to its current end.
type LogReader interface {
	Range(ctx context.Context, from uint64, fn func(seq uint64, subject string, data []byte) error) error
}

// catchUpChunk bounds the entries applied per pebble batch during replay.
const catchUpChunk = 1024

// CatchUp applies every entry the log holds past the store's last seqno.
// It checks that each entry's seqno is its stream sequence and that its
// write set matches its digest.
func CatchUp(ctx context.Context, s *Store, log LogReader) error {
	var chunk []*engine.Entry
	flush := func() error {
		err := s.Apply(chunk)
		chunk = chunk[:0]
		return err
	}
	err := log.Range(ctx, s.Meta().Seqno+1, func(seq uint64, subject string, data []byte) error {
		e, err := engine.DecodeEntry(data)
		if err != nil {
			return fmt.Errorf("state: entry at stream sequence %d: %w", seq, err)
		}
		if e.Seqno != seq || subject != e.Subject() {
			return fmt.Errorf("state: stream sequence %d (%s) holds entry %s (%s)", seq, subject, e.TxID(), e.Subject())
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

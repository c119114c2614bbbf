package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/gavelhq/gavel/engine"
)

// A Projector folds applied entries into a read model that the store keeps
// beside the tables, in its own key space, written in the same pebble batch
// as the entries it folds: the read model always reflects exactly the
// state's seqno, survives a crash with it, and one snapshot reads both.
// Project must be pure and deterministic, so that a read model folded live
// equals one refolded from the log, byte for byte.
type Projector interface {
	// Project returns the read model's writes for entries, which follow
	// the model's position; model is the read model before them.
	Project(model engine.StateReader, entries []*engine.Entry) (engine.WriteSet, error)
	// Position is the last seqno the read model reflects.
	Position(model engine.StateReader) (uint64, error)
}

func modelKey(table, key string) []byte {
	k := tableKey(table, key)
	k[0] = prefixModel
	return k
}

// SetProjector makes Apply fold every applied run of entries into p's read
// model, and CatchUp refold it from the log when it does not reflect the
// state's seqno (a folder older than the read model, or DropModel). Call it
// before the store is used.
func (s *Store) SetProjector(p Projector) { s.proj = p }

// Model reads the read model as last committed.
func (s *Store) Model() engine.StateReader { return reader{r: s.db, prefix: prefixModel} }

// DropModel deletes the read model, so that the next CatchUp refolds it
// from the log (`gavel projections rebuild`).
func (s *Store) DropModel() error {
	if err := s.db.DeleteRange([]byte{prefixModel}, []byte{prefixModel + 1}, pebble.Sync); err != nil {
		return fmt.Errorf("state: drop the read model: %w", err)
	}
	return nil
}

// ErrReadModel marks a read model the projector cannot fold onto (it does
// not follow the entries, or holds what it cannot read): CatchUp refolds
// it from the log.
var ErrReadModel = errors.New("state: the read model cannot be folded")

// project adds the read model's writes for entries to b.
func (s *Store) project(b *pebble.Batch, entries []*engine.Entry) error {
	if s.proj == nil {
		return nil
	}
	ws, err := s.proj.Project(s.Model(), entries)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrReadModel, err)
	}
	for _, w := range ws {
		if w.Delete {
			err = b.Delete(modelKey(w.Table, w.Key), nil)
		} else {
			err = b.Set(modelKey(w.Table, w.Key), w.Value, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// errRefolded stops the log at the state's seqno.
var errRefolded = errors.New("state: read model refolded up to the state")

// refoldModel folds the log from its first message up to the state's seqno
// into an empty read model, authenticating each message as CatchUp does
// (a void entry is folded as void), a chunk per batch.
func (s *Store) refoldModel(ctx context.Context, log LogReader) error {
	if err := s.DropModel(); err != nil {
		return err
	}
	target := s.Meta().Seqno
	if target == 0 {
		return nil
	}
	trusted := engine.NewTrustedNodes()
	var at Meta
	var msgs []engine.LedgerMsg
	flush := func() error {
		entries := openChunk(trusted, msgs, &at, nil)
		msgs = msgs[:0]
		b := s.db.NewBatch()
		defer b.Close()
		if err := s.project(b, entries); err != nil {
			return err
		}
		return b.Commit(pebble.NoSync)
	}
	err := log.Range(ctx, 1, func(m engine.LedgerMsg) error {
		if m.Seq > target {
			return errRefolded
		}
		msgs = append(msgs, m)
		if len(msgs) == catchUpChunk || m.Seq == target {
			if err := flush(); err != nil {
				return err
			}
		}
		if m.Seq == target {
			return errRefolded
		}
		return nil
	})
	if err != nil && !errors.Is(err, errRefolded) {
		return err
	}
	pos, err := s.proj.Position(s.Model())
	if err != nil {
		return err
	}
	if pos != target {
		return fmt.Errorf("state: the log ends at %d, before the state's seqno %d", pos, target)
	}
	return nil
}

// Snapshot is a consistent view of the store at one applied position:
// tables, read model and position read together. Close it when done (and
// before the store closes).
type Snapshot struct {
	snap *pebble.Snapshot
	meta Meta
}

// Snapshot opens a snapshot of the last committed batch.
func (s *Store) Snapshot() (*Snapshot, error) {
	snap := s.db.NewSnapshot()
	sn := &Snapshot{snap: snap}
	v, closer, err := snap.Get([]byte(keyMeta))
	if err == nil {
		err = engine.CBORDecode.Unmarshal(v, &sn.meta)
		closer.Close()
	} else if errors.Is(err, pebble.ErrNotFound) {
		err = nil
	}
	if err != nil {
		snap.Close()
		return nil, fmt.Errorf("state: snapshot meta: %w", err)
	}
	return sn, nil
}

// Meta is the position the snapshot reflects.
func (sn *Snapshot) Meta() Meta { return sn.meta }

// Get and Range read the tables (engine.StateReader).
func (sn *Snapshot) Get(table, key string) ([]byte, bool, error) {
	return reader{r: sn.snap, prefix: prefixTable}.Get(table, key)
}

func (sn *Snapshot) Range(table string, fn func(key string, value []byte) bool) error {
	return reader{r: sn.snap, prefix: prefixTable}.Range(table, fn)
}

// Model reads the read model.
func (sn *Snapshot) Model() engine.StateReader { return reader{r: sn.snap, prefix: prefixModel} }

// Close releases the snapshot.
func (sn *Snapshot) Close() error { return sn.snap.Close() }

// reader is engine.StateReader over one table-shaped key space of a
// pebble reader (the database or a snapshot).
type reader struct {
	r      pebble.Reader
	prefix byte
}

func (r reader) Get(table, key string) ([]byte, bool, error) {
	k := tableKey(table, key)
	k[0] = r.prefix
	return getKey(r.r, k)
}

// getKey reads one value, copied out of pebble (never nil when found).
func getKey(r pebble.Reader, k []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	return append(make([]byte, 0, len(v)), v...), true, nil
}

func (r reader) Range(table string, fn func(key string, value []byte) bool) error {
	p := tablePrefix(table)
	p[0] = r.prefix
	it, err := r.r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		v := it.Value()
		if !fn(string(it.Key()[len(p):]), append(make([]byte, 0, len(v)), v...)) {
			break
		}
	}
	return it.Error()
}

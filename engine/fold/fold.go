// Package fold owns the one definition of what a ledger entry changes: the
// ledger's position (last seqno, its view and time, the last signature,
// the void entries), the Merkle tree's right border, and the tables its
// write set writes. The sequencer folds the rounds it plans with it (over
// an overlay), the state store folds what the log holds with it (into
// pebble, for the primary and followers alike), and the auditor folds its
// replay with it (in memory), so all of them reach the same position and
// root by construction, not by keeping copies in step.
//
// A fold is pure: it writes only to the Tables and tree it is given.
package fold

import (
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/merkle"
)

// Position is how far a fold of the ledger has come.
type Position struct {
	Seqno      uint64 `cbor:"1,keyasint"` // last folded seqno (0: nothing folded)
	View       uint64 `cbor:"2,keyasint"` // view of that entry
	TimeMillis int64  `cbor:"3,keyasint"` // engine time of that entry
	// LastSignature is the seqno of the last signature entry folded.
	LastSignature uint64 `cbor:"4,keyasint"`
	// Voids counts the void entries folded; LastVoid is the last one.
	Voids    uint64 `cbor:"5,keyasint,omitempty"`
	LastVoid Void   `cbor:"6,keyasint,omitempty"`
}

// Void is a void entry: a message of the log that is not an authenticated
// entry, folded as engine.VoidLeaf and never applied.
type Void struct {
	Seqno  uint64 `cbor:"1,keyasint,omitempty" json:"seqno"`
	Reason string `cbor:"2,keyasint,omitempty" json:"reason"`
}

// Unsigned is how many entries follow the last signature.
func (p Position) Unsigned() uint64 { return p.Seqno - p.LastSignature }

// Tables receives an entry's write set.
type Tables interface {
	Set(table, key string, value []byte) error
	Delete(table, key string) error
}

// ErrGap: the entry does not follow the position.
var ErrGap = errors.New("fold: entry does not follow the last folded seqno")

// Apply folds e into pos, tree and tables: its writes into tables (a void
// entry has none), its leaf into tree (put, when not nil, receives the
// tree's new perfect-subtree nodes), and its place into pos. It refuses an
// entry that does not follow pos, and changes nothing then.
func Apply(pos *Position, tree *merkle.Tree, tables Tables, e *engine.Entry, put func(compact.NodeID, engine.Digest)) error {
	if e.Seqno != pos.Seqno+1 {
		return fmt.Errorf("%w: have %d, got %d", ErrGap, pos.Seqno, e.Seqno)
	}
	if e.Kind == engine.KindSignature {
		if _, ok := e.Writes.Value(engine.TableSignatures, ""); !ok {
			return fmt.Errorf("fold: signature entry %s has no signature", e.TxID())
		}
	}
	if e.Kind != engine.KindVoid {
		for _, w := range e.Writes {
			var err error
			if w.Delete {
				err = tables.Delete(w.Table, w.Key)
			} else {
				err = tables.Set(w.Table, w.Key, w.Value)
			}
			if err != nil {
				return err
			}
		}
	}
	tree.Append(e.Leaf(), put)
	switch e.Kind {
	case engine.KindVoid:
		pos.Voids++
		pos.LastVoid = Void{Seqno: e.Seqno, Reason: e.VoidReason}
	case engine.KindSignature:
		pos.LastSignature = e.Seqno
	}
	pos.Seqno, pos.View, pos.TimeMillis = e.Seqno, e.View, e.TimeMillis
	return nil
}

package nodes

import (
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
)

// Fold is the node read model in memory: Projector over a MemState, one
// entry at a time. The auditor re-derives each delete's retired_committed
// from it, with the same fold the replica keeps in pebble.
type Fold struct {
	Model constitution.MemState
	err   error
}

// NewFold returns the fold of an empty log.
func NewFold() *Fold { return &Fold{Model: constitution.MemState{}} }

// Observe folds the next applied (authenticated, non-void) entry.
func (f *Fold) Observe(e *engine.Entry) { f.add(e) }

// Skip notes a void entry at seqno (nothing of it is applied).
func (f *Fold) Skip(seqno uint64) { f.add(&engine.Entry{Kind: engine.KindVoid, Seqno: seqno}) }

func (f *Fold) add(e *engine.Entry) {
	if f.err != nil {
		return
	}
	ws, err := Projector{}.Project(f.Model, []*engine.Entry{e})
	if err != nil {
		f.err = err
		return
	}
	f.Model.Apply(ws)
}

// Err is the first error the fold met (an entry out of order); once set,
// the fold stops.
func (f *Fold) Err() error { return f.err }

// Seqno is the last entry folded.
func (f *Fold) Seqno() uint64 {
	p, _ := ReadPosition(f.Model)
	return p.Seqno
}

// RetiredCommitted reports whether rec's retirement is covered by a
// signature entry. The primary (the node sequencing) is never
// retired_committed: a single replica cannot hand leadership on.
func (f *Fold) RetiredCommitted(rec Record, primary string) bool {
	return RetiredCommitted(f.Model, rec.NodeID, primary)
}

// RetiredCommitted reads, from the node read model, whether node id is
// retired with its retirement covered by a signature entry, and is not the
// primary.
func RetiredCommitted(model engine.StateReader, id, primary string) bool {
	if id == primary {
		return false
	}
	_, ok, err := model.Get(ModelSigned, id)
	return err == nil && ok
}

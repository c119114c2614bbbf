package nodes

import "github.com/gavelhq/gavel/engine"

// Fold follows the log for what the nodes table alone does not say: the
// seqno that last wrote each node's record (CCF's last_written) and the
// last signature entry, hence which retirements a signature covers.
type Fold struct {
	lastWritten   map[string]uint64
	lastSignature uint64
	seqno         uint64
}

// NewFold returns the fold of an empty log.
func NewFold() *Fold { return &Fold{lastWritten: map[string]uint64{}} }

// Observe folds the next applied (authenticated, non-void) entry.
func (f *Fold) Observe(e *engine.Entry) {
	f.seqno = e.Seqno
	if e.Kind == engine.KindSignature {
		f.lastSignature = e.Seqno
		return
	}
	for _, w := range e.Writes {
		if w.Table != engine.TableNodes {
			continue
		}
		if w.Delete {
			delete(f.lastWritten, w.Key)
			continue
		}
		f.lastWritten[w.Key] = e.Seqno
	}
}

// Skip notes a void entry at seqno (nothing of it is applied).
func (f *Fold) Skip(seqno uint64) { f.seqno = seqno }

// Seqno is the last entry folded.
func (f *Fold) Seqno() uint64 { return f.seqno }

// LastSignature is the seqno of the last signature entry folded.
func (f *Fold) LastSignature() uint64 { return f.lastSignature }

// LastWritten is the seqno that last wrote node id's record (0: none).
func (f *Fold) LastWritten(id string) uint64 { return f.lastWritten[id] }

// RetiredCommitted reports whether rec's retirement is covered by a
// signature entry. The primary (primary, the node sequencing) is never
// retired_committed: a single replica cannot hand leadership on.
func (f *Fold) RetiredCommitted(rec Record, primary string) bool {
	w, ok := f.lastWritten[rec.NodeID]
	return ok && rec.Status == StatusRetired && rec.NodeID != primary && w < f.lastSignature
}

package nodes

import (
	"strings"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
)

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

// TablePrefix is the prefix of every node table a Follower keeps.
const TablePrefix = "gov.nodes."

// Follower folds raw ledger messages as the state does — each
// authenticated against the service nodes Trusted before it, a void one
// skipped — into the node tables (State) and the Fold. It is the read
// model the node projections read, and what `gavel projections rebuild`
// rebuilds from the log alone.
type Follower struct {
	trusted *engine.TrustedNodes
	Fold    *Fold
	State   constitution.MemState
}

// NewFollower returns the follower of an empty log.
func NewFollower() *Follower {
	return &Follower{trusted: engine.NewTrustedNodes(), Fold: NewFold(), State: constitution.MemState{}}
}

// Add folds the next message of the log.
func (f *Follower) Add(m engine.LedgerMsg) {
	e, err := f.trusted.OpenEntry(m)
	if err != nil {
		f.Fold.Skip(m.Seq)
		return
	}
	f.trusted.Observe(e.Writes)
	f.Fold.Observe(e)
	for _, w := range e.Writes {
		if strings.HasPrefix(w.Table, TablePrefix) {
			f.State.Apply(engine.WriteSet{w})
		}
	}
}

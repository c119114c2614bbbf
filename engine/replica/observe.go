package replica

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/nodes"
	"github.com/gavelhq/gavel/engine/state"
	"github.com/gavelhq/gavel/handlers"
)

// CommitReport is one submitted command's outcome, for metrics: how long
// the submit wrapper waited and the error, if any (refusals included).
type CommitReport struct {
	Kind engine.EntryKind
	Took time.Duration
	Err  error
}

// Leadership is who holds the write path (the lease holder; a single
// replica is its own primary) and the view this replica is in.
func (r *Replica) Leadership() (holder string, view uint64) {
	return r.PrimaryID(), r.currentView()
}

// Sequencing is the sequencer's cumulative counters and the applied
// state's position, read from memory.
func (r *Replica) Sequencing() handlers.Sequencing {
	s := handlers.Sequencing{QueueCapacity: r.cfg.Sequencer.WithDefaults().QueueSize}
	if seq := r.Sequencer(); seq != nil { // a follower has none
		s.Rounds, s.Entries = seq.Stats()
		t := seq.Timing()
		s.Execute, s.Append, s.Apply, s.Queued = t.Execute, t.Append, t.Apply, seq.Queued()
	}
	if f := r.WriteFault(); f != nil {
		s.Fault = &handlers.WriteError{Code: f.Code, Message: f.Message, Since: f.Since.UTC()}
	}
	if st, done, err := r.reading(); err == nil {
		m := st.Meta()
		s.Seqno, s.LastSignature, s.Voids = m.Seqno, m.LastSignature, m.Voids
		done()
	} else {
		done()
	}
	return s
}

// ProjectionLag is how many entries each read model is behind: the state
// behind the log, the node read model (never: it is folded with the
// state) and the network-map read model behind the state (it catches up
// on its next read). A read model busy catching up
// is skipped rather than waited for.
func (r *Replica) ProjectionLag(ctx context.Context) map[string]uint64 {
	lag := map[string]uint64{}
	st, done, err := r.reading()
	if err != nil {
		done()
		return lag
	}
	applied := st.Meta().Seqno
	done()
	if last, err := r.log.LastSequence(ctx); err == nil && last >= applied {
		lag["state"] = last - applied
	}
	// The node read model is folded in the state's own apply batch.
	lag["nodes"] = 0
	if nm := r.nm; nm != nil {
		if s, ok := within(ctx, &nm.mu, func() (uint64, bool) { return nm.seqno, true }); ok && s <= applied {
			lag["network_map"] = applied - s
		}
	}
	return lag
}

// within runs read under mu unless mu stays held until ctx ends (a read
// model stuck on the log): then it gives up, and the waiting goroutine
// reads and lets go once mu is free.
func within(ctx context.Context, mu *sync.Mutex, read func() (uint64, bool)) (uint64, bool) {
	type answer struct {
		v  uint64
		ok bool
	}
	ch := make(chan answer, 1)
	go func() {
		mu.Lock()
		defer mu.Unlock()
		v, ok := read()
		ch <- answer{v, ok}
	}()
	select {
	case a := <-ch:
		return a.v, a.ok
	case <-ctx.Done():
		return 0, false
	}
}

// reportCommit tells Config.OnCommit of a submit.
func (r *Replica) reportCommit(kind engine.EntryKind, t0 time.Time, err error) {
	if fn := r.cfg.OnCommit; fn != nil {
		fn(CommitReport{Kind: kind, Took: time.Since(t0), Err: err})
	}
}

var _ handlers.Observed = (*Replica)(nil)

// LedgerTail is the last n entries, newest first, read from the state's
// leaf records (no log reads).
func (r *Replica) LedgerTail(ctx context.Context, n int) ([]handlers.LedgerEntry, error) {
	return read(r, func(st *state.Store) ([]handlers.LedgerEntry, error) {
		m := st.Meta()
		out := []handlers.LedgerEntry{}
		for s := m.Seqno; s > 0 && len(out) < n; s-- {
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			leaf, ok, err := st.Leaf(s)
			if err != nil {
				return out, err
			}
			if !ok {
				continue
			}
			out = append(out, handlers.LedgerEntry{TxID: engine.TxID{View: leaf.View, Seqno: s}.String(), Kind: string(leaf.Kind),
				Time: time.UnixMilli(leaf.TimeMillis).UTC(), Signed: s <= m.LastSignature})
		}
		return out, nil
	})
}

var _ handlers.LedgerTail = (*Replica)(nil)

// JoinPolicySource is the node join policy in force ("" when none is set).
func (r *Replica) JoinPolicySource(ctx context.Context) (string, error) {
	return read(r, func(st *state.Store) (string, error) {
		v, ok, err := st.Get(nodes.TableJoinPolicy, "")
		if err != nil || !ok {
			return "", err
		}
		var src string
		if err := json.Unmarshal(v, &src); err != nil {
			return "", err
		}
		return src, nil
	})
}

var _ handlers.JoinPolicySource = (*Replica)(nil)

package netmap

import (
	"slices"
	"time"

	"github.com/gavelhq/gavel/engine"
)

// MapIndex is the map kept up to date from applied write sets, so that a
// NodeInfo publish costs the read side O(1) lookups instead of a pass over
// every live node. Build is the full pass (Map's); Apply folds one entry's
// writes and reports when only a rebuild can be right: the parameters, the
// pending update, acceptances or the nodes table changed, or a node may
// have passed the event horizon.
type MapIndex struct {
	cur     Current
	pending *UpdatePayload
	live    map[string]liveNode // node id → its entry in the map
	minSeen int64               // a lower bound of live nodes' last-seen times
}

type liveNode struct {
	hash     string
	lastSeen int64
}

// BuildIndex computes the map from state as of asOf (see Map).
func BuildIndex(st engine.StateReader, dir NodeDirectory, asOf time.Time) (*MapIndex, error) {
	cur, err := LoadCurrent(st)
	if err != nil {
		return nil, err
	}
	x := &MapIndex{cur: cur, live: map[string]liveNode{}, minSeen: asOf.UnixMilli()}
	if p, ok, err := LoadPending(st); err != nil {
		return nil, err
	} else if ok {
		x.pending = &UpdatePayload{NewParametersHash: p.NewParametersHash, Description: p.Description, UpdateDeadline: p.UpdateDeadline}
	}
	cutoff := asOf.UnixMilli() - cur.EventHorizonSeconds*1000
	var firstErr error
	err = st.Range(TableSeen, func(key string, v []byte) bool {
		ms, id, err := ParseSeenKey(key)
		if err == nil && ms < cutoff {
			return false // newest first: every later key is stale too
		}
		if err == nil {
			err = x.put(st, dir, id, ms, v, asOf)
		}
		if err != nil {
			firstErr = err
			return false
		}
		return true
	})
	if err == nil {
		err = firstErr
	}
	if err != nil {
		return nil, err
	}
	return x, nil
}

// put decides whether the node seen at ms with value v is in the map.
func (x *MapIndex) put(st engine.StateReader, dir NodeDirectory, id string, ms int64, v []byte, asOf time.Time) error {
	epoch, hash, err := ParseSeenValue(v)
	if err != nil {
		return err
	}
	rec, known, err := dir.Node(id)
	if err != nil {
		return err
	}
	accepted := false
	if epoch < x.cur.Epoch {
		if _, accepted, err = st.Get(TableAcks, AckKey(x.cur.Hash, id)); err != nil {
			return err
		}
	}
	if InMap(NodeState{NodeID: id, Hash: hash, LastSeenMs: ms, Epoch: epoch}, rec, known, accepted, x.cur, asOf) {
		x.live[id] = liveNode{hash: hash, lastSeen: ms}
		x.minSeen = min(x.minSeen, ms)
	} else {
		delete(x.live, id)
	}
	return nil
}

// Apply folds the writes of one entry applied to st, whose time is asOf.
// It returns false, and leaves the index to be rebuilt, when the writes
// touch what decides more than the publishing node's place in the map.
func (x *MapIndex) Apply(st engine.StateReader, dir NodeDirectory, ws engine.WriteSet, asOf time.Time) (bool, error) {
	for _, w := range ws {
		switch w.Table {
		case TableCurrent, TablePending, TableAcks, TableAccepted, NodesDirectoryTable:
			return false, nil
		case TableSeen:
			ms, id, err := ParseSeenKey(w.Key)
			if err != nil {
				return false, err
			}
			if w.Delete {
				// The same entry may already have put the node's new key.
				if n, ok := x.live[id]; ok && n.lastSeen == ms {
					delete(x.live, id)
				}
				continue
			}
			if err := x.put(st, dir, id, ms, w.Value, asOf); err != nil {
				return false, err
			}
		}
	}
	cutoff := asOf.UnixMilli() - x.cur.EventHorizonSeconds*1000
	return x.minSeen >= cutoff, nil
}

// Payload is the map payload: hashes sorted.
func (x *MapIndex) Payload() MapPayload {
	m := MapPayload{NodeInfoHashes: make([]string, 0, len(x.live)), NetworkParametersHash: x.cur.Hash, ParametersUpdate: x.pending}
	for _, n := range x.live {
		m.NodeInfoHashes = append(m.NodeInfoHashes, n.hash)
	}
	slices.Sort(m.NodeInfoHashes)
	return m
}

package netmap

import (
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/gavelhq/gavel/engine"
)

// MapIndex is the map kept up to date from applied write sets, so that a
// NodeInfo publish costs the read side O(log N) work and one copy of the
// payload instead of a pass over every live node. Build is the full pass
// (Map's); Apply folds one entry's writes and reports when only a rebuild
// can be right: the parameters or the pending update changed, or a node
// may have passed the event horizon.
//
// The payload is kept encoded: the live nodes' hashes as a sorted run of
// fixed-size JSON items (hashList), and the fields after the list as
// bytes fixed at build, so Payload's bytes are three pieces that AppendPayload
// copies once.
type MapIndex struct {
	cur     Current
	pending *UpdatePayload
	live    map[string]liveNode // node id → its entry in the map
	minSeen int64               // a lower bound of live nodes' last-seen times
	hashes  hashList
	tail    []byte              // `],"network_parameters_hash":…}`
	changed map[string]struct{} // node ids whose place changed since TakeChanged
	built   bool                // the hash list follows live (after the build's pass)
}

type liveNode struct {
	hash     string
	lastSeen int64
}

// mapHead opens the payload; the hash list follows it.
const mapHead = `{"node_info_hashes":[`

// BuildIndex computes the map from state as of asOf (see Map).
func BuildIndex(st engine.StateReader, dir NodeDirectory, asOf time.Time) (*MapIndex, error) {
	cur, err := LoadCurrent(st)
	if err != nil {
		return nil, err
	}
	x := &MapIndex{cur: cur, live: map[string]liveNode{}, minSeen: asOf.UnixMilli(), changed: map[string]struct{}{}}
	if p, ok, err := LoadPending(st); err != nil {
		return nil, err
	} else if ok {
		x.pending = &UpdatePayload{NewParametersHash: p.NewParametersHash, Description: p.Description, UpdateDeadline: p.UpdateDeadline}
	}
	tail, err := json.Marshal(struct {
		NetworkParametersHash string         `json:"network_parameters_hash"`
		ParametersUpdate      *UpdatePayload `json:"parameters_update"`
	}{cur.Hash, x.pending})
	if err != nil {
		return nil, err
	}
	x.tail = append([]byte("],"), tail[1:]...)
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
	// The pass visits nodes by last-seen time: the list is made once, sorted.
	x.hashes.b = make([]byte, 0, len(x.live)*hashItem)
	for _, n := range x.live {
		x.hashes.b = append(x.hashes.b, make([]byte, hashItem)...)
		writeItem(x.hashes.b[len(x.hashes.b)-hashItem:], n.hash)
	}
	x.hashes.sort()
	x.built = true
	clear(x.changed)
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
		x.set(id, liveNode{hash: hash, lastSeen: ms})
		x.minSeen = min(x.minSeen, ms)
	} else {
		x.drop(id)
	}
	return nil
}

// refresh decides a node's place again from its current state, after a
// write that is not its last-seen key (its directory record, say).
func (x *MapIndex) refresh(st engine.StateReader, dir NodeDirectory, id string, asOf time.Time) error {
	n, ok, err := LoadNode(st, id)
	if err != nil {
		return err
	}
	if !ok {
		x.drop(id)
		return nil
	}
	return x.put(st, dir, id, n.LastSeenMs, SeenValue(n.Epoch, n.Hash), asOf)
}

func (x *MapIndex) set(id string, n liveNode) {
	old, had := x.live[id]
	x.live[id] = n
	if had && old.hash == n.hash || !x.built {
		return
	}
	if had {
		x.hashes.remove(old.hash)
	}
	x.hashes.insert(n.hash)
	x.changed[id] = struct{}{}
}

func (x *MapIndex) drop(id string) {
	old, had := x.live[id]
	if !had {
		return
	}
	delete(x.live, id)
	if !x.built {
		return
	}
	x.hashes.remove(old.hash)
	x.changed[id] = struct{}{}
}

// Apply folds the writes of one entry applied to st, whose time is asOf.
// It returns false, and leaves the index to be rebuilt, when the writes
// change what decides every node's place in the map (the parameters in
// force, the pending update), or when a live node may have passed the
// event horizon.
func (x *MapIndex) Apply(st engine.StateReader, dir NodeDirectory, ws engine.WriteSet, asOf time.Time) (bool, error) {
	for _, w := range ws {
		switch w.Table {
		case TableCurrent, TablePending:
			return false, nil
		case TableAcks:
			// Only an acceptance of the parameters in force places a node
			// (one that published under older ones); acceptances of the
			// pending update count at its flag day, which rebuilds.
			if hash, id, ok := strings.Cut(w.Key, "/"); ok && hash == x.cur.Hash {
				if err := x.refresh(st, dir, id, asOf); err != nil {
					return false, err
				}
			}
		case NodesDirectoryTable:
			if err := x.refresh(st, dir, w.Key, asOf); err != nil {
				return false, err
			}
		case TableSeen:
			ms, id, err := ParseSeenKey(w.Key)
			if err != nil {
				return false, err
			}
			if w.Delete {
				// The same entry may already have put the node's new key.
				if n, ok := x.live[id]; ok && n.lastSeen == ms {
					x.drop(id)
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
	return MapPayload{NodeInfoHashes: x.hashes.strings(), NetworkParametersHash: x.cur.Hash, ParametersUpdate: x.pending}
}

// PayloadLen is the length of the encoded payload.
func (x *MapIndex) PayloadLen() int {
	return len(mapHead) + max(len(x.hashes.b)-1, 0) + len(x.tail)
}

// AppendPayload appends the encoded payload, MapPayload.Encode's bytes for
// Payload(), to b: one copy of the hash list.
func (x *MapIndex) AppendPayload(b []byte) []byte {
	b = append(b, mapHead...)
	if len(x.hashes.b) > 0 {
		b = append(b, x.hashes.b[1:]...) // the first item's comma dropped
	}
	return append(b, x.tail...)
}

// Live is the node ids in the map and their NodeInfo hashes.
func (x *MapIndex) Live(fn func(id, hash string)) {
	for id, n := range x.live {
		fn(id, n.hash)
	}
}

// Hash is the NodeInfo hash of a node in the map, or false.
func (x *MapIndex) Hash(id string) (string, bool) {
	n, ok := x.live[id]
	return n.hash, ok
}

// TakeChanged returns the ids of the nodes that entered or left the map or
// changed NodeInfo since the index was built or last asked, and forgets them.
func (x *MapIndex) TakeChanged() []string {
	ids := make([]string, 0, len(x.changed))
	for id := range x.changed {
		ids = append(ids, id)
	}
	clear(x.changed)
	return ids
}

// hashList is a sorted multiset of NodeInfo hashes kept as the payload
// encodes its list: items of hashItem bytes, `,"<64 hex>"`. Insert and
// remove are a binary search and one move of the bytes after the item.
type hashList struct {
	b []byte
}

const hashItem = 1 + 1 + 64 + 1

func (l *hashList) len() int { return len(l.b) / hashItem }

func (l *hashList) at(i int) []byte { return l.b[i*hashItem+2 : i*hashItem+66] }

// search is the first index whose hash is not below h.
func (l *hashList) search(h string) int {
	return sort.Search(l.len(), func(i int) bool { return string(l.at(i)) >= h })
}

func (l *hashList) insert(h string) {
	i := l.search(h) * hashItem
	l.b = append(l.b, make([]byte, hashItem)...)
	copy(l.b[i+hashItem:], l.b[i:])
	writeItem(l.b[i:i+hashItem], h)
}

func (l *hashList) remove(h string) {
	i := l.search(h)
	if i == l.len() || string(l.at(i)) != h {
		return
	}
	o := i * hashItem
	l.b = append(l.b[:o], l.b[o+hashItem:]...)
}

// sort orders items appended out of order.
func (l *hashList) sort() {
	s := l.strings()
	sort.Strings(s)
	for i, h := range s {
		writeItem(l.b[i*hashItem:(i+1)*hashItem], h)
	}
}

func (l *hashList) strings() []string {
	out := make([]string, l.len())
	for i := range out {
		out[i] = string(l.at(i))
	}
	return out
}

func writeItem(dst []byte, h string) {
	dst[0], dst[1] = ',', '"'
	copy(dst[2:66], h)
	dst[66] = '"'
}

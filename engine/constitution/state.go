package constitution

import (
	"maps"
	"slices"
	"strings"

	"github.com/gavelhq/gavel/engine"
)

// StateReader is the read-only view of the governance tables a call sees.
// Values are JSON bytes. Implementations must be safe for the duration of a
// call; errors abort the call (CodeStateReadFailed).
type StateReader interface {
	// Get returns the value at (table, key), ok=false if absent.
	Get(table, key string) (value []byte, ok bool, err error)
	// Range calls fn for each key of table in ascending byte order until fn
	// returns false.
	Range(table string, fn func(key string, value []byte) bool) error
}

// MemState is an in-memory StateReader: table → key → JSON value. It is a
// real store for genesis, tools and tests, not a mock.
type MemState map[string]map[string][]byte

// Get implements StateReader.
func (m MemState) Get(table, key string) ([]byte, bool, error) {
	v, ok := m[table][key]
	return v, ok, nil
}

// Range implements StateReader.
func (m MemState) Range(table string, fn func(key string, value []byte) bool) error {
	t := m[table]
	for _, k := range slices.Sorted(maps.Keys(t)) {
		if !fn(k, t[k]) {
			break
		}
	}
	return nil
}

// Apply folds a write set into the state.
func (m MemState) Apply(ws engine.WriteSet) {
	for _, w := range ws {
		if w.Delete {
			delete(m[w.Table], w.Key)
			continue
		}
		if m[w.Table] == nil {
			m[w.Table] = map[string][]byte{}
		}
		m[w.Table][w.Key] = slices.Clone(w.Value)
	}
}

// overlay holds apply's writes over the state, so a call reads its own
// writes; its contents are the call's write set.
type overlay struct {
	state  StateReader
	writes map[string]map[string]*engine.Write
}

func newOverlay(state StateReader) *overlay {
	return &overlay{state: state}
}

func (o *overlay) get(table, key string) ([]byte, bool, error) {
	if w, ok := o.writes[table][key]; ok {
		return w.Value, !w.Delete, nil
	}
	if o.state == nil {
		return nil, false, nil
	}
	return o.state.Get(table, key)
}

type entry struct {
	key   string
	value []byte
}

// entries lists the table's live entries in key order.
func (o *overlay) entries(table string) ([]entry, error) {
	var out []entry
	if o.state != nil {
		err := o.state.Range(table, func(k string, v []byte) bool {
			out = append(out, entry{k, v})
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	pending := o.writes[table]
	if len(pending) == 0 {
		return out, nil
	}
	merged := out[:0:0]
	for _, e := range out {
		if _, overwritten := pending[e.key]; !overwritten {
			merged = append(merged, e)
		}
	}
	for k, w := range pending {
		if !w.Delete {
			merged = append(merged, entry{k, w.Value})
		}
	}
	slices.SortFunc(merged, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	return merged, nil
}

func (o *overlay) put(table, key string, value []byte) {
	o.record(engine.Write{Table: table, Key: key, Value: value})
}

func (o *overlay) remove(table, key string) {
	o.record(engine.Write{Table: table, Key: key, Delete: true})
}

func (o *overlay) record(w engine.Write) {
	if o.writes == nil {
		o.writes = map[string]map[string]*engine.Write{}
	}
	if o.writes[w.Table] == nil {
		o.writes[w.Table] = map[string]*engine.Write{}
	}
	o.writes[w.Table][w.Key] = &w
}

// writeSet is the canonical write set of everything recorded; never nil,
// so "no writes" always encodes as an empty CBOR array.
func (o *overlay) writeSet() engine.WriteSet {
	ws := engine.WriteSet{}
	for _, t := range o.writes {
		for _, w := range t {
			ws = append(ws, *w)
		}
	}
	return ws.Canonical()
}

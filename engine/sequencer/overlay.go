package sequencer

import (
	"slices"

	"github.com/gavelhq/gavel/engine"
)

// overlay is the state as it will be once the round's earlier entries
// commit: their writes over the store.
type overlay struct {
	base   engine.StateReader
	writes map[string]map[string]engine.Write // table → key → last write
}

func newOverlay(base engine.StateReader) *overlay { return &overlay{base: base} }

// Set and Delete make the overlay the tables of a fold.
func (o *overlay) Set(table, key string, value []byte) error {
	o.put(engine.Write{Table: table, Key: key, Value: value})
	return nil
}

func (o *overlay) Delete(table, key string) error {
	o.put(engine.Write{Table: table, Key: key, Delete: true})
	return nil
}

func (o *overlay) put(w engine.Write) {
	if o.writes == nil {
		o.writes = make(map[string]map[string]engine.Write)
	}
	t := o.writes[w.Table]
	if t == nil {
		t = make(map[string]engine.Write)
		o.writes[w.Table] = t
	}
	t[w.Key] = w
}

func (o *overlay) Get(table, key string) ([]byte, bool, error) {
	if w, ok := o.writes[table][key]; ok {
		if w.Delete {
			return nil, false, nil
		}
		return w.Value, true, nil
	}
	return o.base.Get(table, key)
}

func (o *overlay) Range(table string, fn func(key string, value []byte) bool) error {
	pending := o.writes[table]
	if len(pending) == 0 {
		return o.base.Range(table, fn)
	}
	// Merge the base's keys with the pending writes, in key order.
	merged := map[string][]byte{}
	if err := o.base.Range(table, func(k string, v []byte) bool { merged[k] = v; return true }); err != nil {
		return err
	}
	for k, w := range pending {
		if w.Delete {
			delete(merged, k)
		} else {
			merged[k] = w.Value
		}
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !fn(k, merged[k]) {
			return nil
		}
	}
	return nil
}

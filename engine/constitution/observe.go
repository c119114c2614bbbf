package constitution

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// An Observation is what one call read of its environment besides its
// arguments: every state read (through Env.State, nested calls included)
// and whether it read anything that is not state (the entry's time) or had
// an effect besides its result (console output). A read-only call's
// outcome is a pure function of its module, arguments, budget and what it
// observed, so a caller may reuse the outcome for as long as Unchanged
// holds (issue 14: ballots that cannot have changed).
type Observation struct {
	gets   map[string]observedGet // by table NUL key
	ranges map[string][32]byte    // by table: digest of every entry ranged
	size   int                    // bytes of table names and keys kept
	opaque bool
}

type observedGet struct {
	table, key string
	ok         bool
	digest     [32]byte
}

// maxObserved and maxObservedBytes bound what one Observation records
// (distinct reads, bytes of their names); a call that reads more is opaque:
// not worth keeping, and a script cannot make a kept one large.
const (
	maxObserved      = 256
	maxObservedBytes = 16 << 10
)

func newObservation() *Observation { return &Observation{} }

// Reusable reports whether the outcome depends only on state that
// Unchanged can check: no time read, no console output, not too many reads.
func (o *Observation) Reusable() bool { return o != nil && !o.opaque }

// ReadNothing reports whether the call read no state at all.
func (o *Observation) ReadNothing() bool { return len(o.gets) == 0 && len(o.ranges) == 0 }

// Unchanged reports whether st holds exactly what the call read.
func (o *Observation) Unchanged(st StateReader) (bool, error) {
	if !o.Reusable() {
		return false, nil
	}
	for _, g := range o.gets {
		if st == nil {
			return false, nil
		}
		v, ok, err := st.Get(g.table, g.key)
		if err != nil {
			return false, err
		}
		if ok != g.ok || (ok && sha256.Sum256(v) != g.digest) {
			return false, nil
		}
	}
	for table, want := range o.ranges {
		if st == nil {
			return false, nil
		}
		got, complete, err := rangeDigest(st, table, nil)
		if err != nil {
			return false, err
		}
		if !complete || got != want {
			return false, nil
		}
	}
	return true, nil
}

// full reports whether n more bytes of names would not fit.
func (o *Observation) full(n int) bool {
	return len(o.gets)+len(o.ranges) >= maxObserved || o.size+n > maxObservedBytes
}

// observingState records every read of the state it wraps.
type observingState struct {
	st  StateReader
	obs *Observation
}

func (s observingState) Get(table, key string) ([]byte, bool, error) {
	v, ok, err := s.st.Get(table, key)
	if err != nil {
		return v, ok, err
	}
	o := s.obs
	id := table + "\x00" + key
	if _, seen := o.gets[id]; !seen {
		if o.full(len(id)) {
			o.opaque = true
		} else {
			o.size += len(id)
			if o.gets == nil {
				o.gets = map[string]observedGet{}
			}
			g := observedGet{table: table, key: key, ok: ok}
			if ok {
				g.digest = sha256.Sum256(v)
			}
			o.gets[id] = g
		}
	}
	return v, ok, nil
}

func (s observingState) Range(table string, fn func(key string, value []byte) bool) error {
	d, complete, err := rangeDigest(s.st, table, fn)
	if err != nil {
		return err
	}
	o := s.obs
	switch _, seen := o.ranges[table]; {
	case !complete:
		o.opaque = true // a partial range: not worth the bookkeeping
	case seen:
	case o.full(len(table)):
		o.opaque = true
	default:
		if o.ranges == nil {
			o.ranges = map[string][32]byte{}
		}
		o.size += len(table)
		o.ranges[table] = d
	}
	return nil
}

// rangeDigest ranges table, passing each entry on to fn (if set) until fn
// stops, and digests the entries: complete is false if fn stopped early.
func rangeDigest(st StateReader, table string, fn func(string, []byte) bool) (d [32]byte, complete bool, err error) {
	h := sha256.New()
	complete = true
	err = st.Range(table, func(k string, v []byte) bool {
		writeLP(h, []byte(k))
		writeLP(h, v)
		if fn != nil && !fn(k, v) {
			complete = false
			return false
		}
		return true
	})
	h.Sum(d[:0])
	return d, complete, err
}

func writeLP(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// observe marks the running call's observation, if any, as opaque: it saw
// something that is not state, or had an effect besides its result.
func (sb *sandbox) observeOpaque() {
	if c := sb.cur; c != nil && c.env.observe != nil {
		c.env.observe.opaque = true
	}
}

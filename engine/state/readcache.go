package state

import (
	"bytes"
	"hash/maphash"
	"sync"
)

// ReadCacheBytes bounds the table values the store keeps in memory for
// Get (keys, values and bookkeeping counted).
const ReadCacheBytes = 32 << 20

// readCacheMaxValue is the largest value kept: a constitution or a bundle
// is read through a digest first, and would only push out small records.
const readCacheMaxValue = 256 << 10

// Whole tables are kept for Range when small (the members a resolve
// counts): at most readRangeTables tables of readRangeMaxBytes each.
const (
	readRangeTables   = 32
	readRangeMaxBytes = 64 << 10
)

// readItemOverhead approximates what an item costs beyond its key and value
// (the map entry, the item, the ring slot).
const readItemOverhead = 96

// readCache keeps table values as last committed, by their pebble key, so
// that execution's repeated reads of the same records (the signer's member
// record, the service configuration, the budget, an open proposal) skip
// pebble's memtable and block seeks. It is exact, never merely recent:
//   - Apply writes every key it commits that the cache holds (value or
//     absence), and keeps the new keys of tables Get reads, before the
//     store publishes its new position, so a reader who has seen the
//     position reads the new values;
//   - a value read from pebble is kept only if no Apply since the read
//     began wrote its key (written), so a read that raced a commit cannot
//     keep an old value, while reads on other goroutines (a request's
//     verification reading ahead what its execution will read) are kept
//     though rounds commit meanwhile;
//   - a failed commit (the state unknown) empties it.
//
// Values are immutable once kept: they are copied in and copied out.
// Eviction is CLOCK (a second chance for what was read since the hand
// last passed), bounded by bytes.
type readCache struct {
	mu   sync.Mutex
	max  int // bytes; 0 turns the cache off
	size int
	gen  uint64 // counts Applies and resets
	// written is the last generation that wrote each key (by hash; a
	// collision only refuses a fill), and tableWritten each table, for
	// generations since floor; a fill that began before floor is refused.
	written      map[uint64]uint64
	tableWritten map[string]uint64
	floor        uint64
	seed         maphash.Seed
	items        map[string]*readItem
	ring         []*readItem
	hand         int
	hits         uint64
	// ranges are whole tables by their key prefix, in key order; a
	// committed write to a table drops its listing.
	ranges map[string][]rangeItem
	// read are the tables (by key prefix) Get has read from pebble: their
	// committed writes are kept as written (a proposal is read back at
	// its next vote), others' only if kept already.
	read map[string]bool
}

type rangeItem struct {
	key   string // the table's key, without the prefix
	value []byte
}

type readItem struct {
	key     string
	value   []byte // nil when absent
	present bool
	ref     bool
	slot    int // index in ring
}

func newReadCache(max int) *readCache {
	return &readCache{max: max, items: map[string]*readItem{}, ranges: map[string][]rangeItem{}, read: map[string]bool{},
		written: map[uint64]uint64{}, tableWritten: map[string]uint64{}, seed: maphash.MakeSeed()}
}

// writtenMax bounds the keys remembered as written; past it, fills that
// began before are refused.
const writtenMax = 1 << 16

// unchangedSince reports whether no generation after gen wrote key k
// (table, a key prefix, for a listing).
func (c *readCache) unchangedSince(gen uint64, k []byte, table bool) bool {
	if gen == c.gen {
		return true
	}
	if gen < c.floor {
		return false
	}
	if table {
		return c.tableWritten[string(k)] <= gen
	}
	return c.written[maphash.Bytes(c.seed, k)] <= gen
}

func (it *readItem) cost() int { return len(it.key) + len(it.value) + readItemOverhead }

// lookup returns a copy of the value kept for k (hit), or the generation a
// fill of k after reading pebble must name.
func (c *readCache) lookup(k []byte) (v []byte, ok, hit bool, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if it, found := c.items[string(k)]; found {
		it.ref = true
		c.hits++
		if !it.present {
			return nil, false, true, c.gen
		}
		return append(make([]byte, 0, len(it.value)), it.value...), true, true, c.gen
	}
	return nil, false, false, c.gen
}

// fill keeps what pebble answered for k, unless an Apply or reset ran
// since gen (the answer may be older than the commit) or k is kept
// already (Apply's value is newer than the answer).
func (c *readCache) fill(k []byte, gen uint64, v []byte, ok bool) {
	if len(v) > readCacheMaxValue {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max == 0 || !c.unchangedSince(gen, k, false) {
		return
	}
	if _, found := c.items[string(k)]; found {
		return
	}
	if i := bytes.IndexByte(k, 0); i >= 0 && !c.read[string(k[:i+1])] && len(c.read) < readTablesMax {
		c.read[string(k[:i+1])] = true
	}
	c.insert(string(k), v, ok)
	c.evict()
}

// readTablesMax bounds the tables whose writes are kept as written.
const readTablesMax = 64

func (c *readCache) insert(k string, v []byte, ok bool) {
	it := &readItem{key: k, present: ok, slot: len(c.ring)}
	if ok {
		it.value = append(make([]byte, 0, len(v)), v...)
	}
	c.items[it.key] = it
	c.ring = append(c.ring, it)
	c.size += it.cost()
}

// cacheWrite is one committed table write, in fold order.
type cacheWrite struct {
	key    []byte
	value  []byte
	delete bool
}

// committed updates the kept keys that ws wrote, in order (the last write
// of a key wins, as in the batch), and starts a new generation. It must run
// after the batch commits and before the new position is published.
func (c *readCache) committed(ws []cacheWrite) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if len(c.written)+len(ws) > writtenMax {
		clear(c.written)
		clear(c.tableWritten)
		c.floor = c.gen
	}
	for _, w := range ws {
		table := w.key
		if i := bytes.IndexByte(w.key, 0); i >= 0 {
			table = w.key[:i+1]
		}
		c.written[maphash.Bytes(c.seed, w.key)] = c.gen
		if c.tableWritten[string(table)] != c.gen {
			c.tableWritten[string(table)] = c.gen
		}
		if len(c.ranges) > 0 {
			delete(c.ranges, string(table))
		}
		it, found := c.items[string(w.key)]
		if !found {
			if c.max > 0 && c.read[string(table)] && (w.delete || len(w.value) <= readCacheMaxValue) {
				c.insert(string(w.key), w.value, !w.delete)
			}
			continue
		}
		if !w.delete && len(w.value) > readCacheMaxValue {
			c.remove(it)
			continue
		}
		c.size -= it.cost()
		if w.delete {
			it.value, it.present = nil, false
		} else {
			it.value, it.present = bytes.Clone(w.value), true
		}
		c.size += it.cost()
	}
	c.evict()
}

// reset forgets everything: the state is unknown (a failed commit).
func (c *readCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.floor = c.gen
	clear(c.written)
	clear(c.tableWritten)
	c.items, c.ring, c.hand, c.size = map[string]*readItem{}, nil, 0, 0
	c.ranges = map[string][]rangeItem{}
}

// lookupRange returns the listing kept for the table with key prefix p,
// or the generation a fill must name. The listing is shared: callers copy
// values out.
func (c *readCache) lookupRange(p []byte) (items []rangeItem, hit bool, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	items, hit = c.ranges[string(p)]
	if hit {
		c.hits++
	}
	return items, hit, c.gen
}

// fillRange keeps a whole table's listing read at gen (values already
// copied, never changed after).
func (c *readCache) fillRange(p []byte, gen uint64, items []rangeItem) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max == 0 || !c.unchangedSince(gen, p, true) {
		return
	}
	if len(c.ranges) >= readRangeTables {
		clear(c.ranges)
	}
	c.ranges[string(p)] = items
}

// evict removes items until the cache fits its bound.
func (c *readCache) evict() {
	for c.size > c.max && len(c.ring) > 0 {
		if c.hand >= len(c.ring) {
			c.hand = 0
		}
		it := c.ring[c.hand]
		if it.ref {
			it.ref = false
			c.hand++
			continue
		}
		c.remove(it) // the last item moves into the hand's slot
	}
}

func (c *readCache) remove(it *readItem) {
	last := len(c.ring) - 1
	c.ring[it.slot] = c.ring[last]
	c.ring[it.slot].slot = it.slot
	c.ring[last] = nil
	c.ring = c.ring[:last]
	delete(c.items, it.key)
	c.size -= it.cost()
}

// ReadCacheStats is how the read cache is doing.
type ReadCacheStats struct {
	Items int
	Bytes int
	Hits  uint64
}

func (c *readCache) stats() ReadCacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ReadCacheStats{Items: len(c.items), Bytes: c.size, Hits: c.hits}
}

package state

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gavelhq/gavel/engine"
)

// history drives a cached store, an uncached one and a map through the
// same applied write sets and reads, from a stream of choices: every read
// must agree on all three (value, presence, nil-ness), whatever the cache
// kept or evicted. A store with a tiny bound evicts all the time.
type history struct {
	t       testing.TB
	cached  *Store
	plain   *Store
	model   map[string][]byte // table\x00key → value
	seqno   uint64
	applies int
	// slow are reads of the cached store begun (the generation taken, pebble
	// read) but not yet finished (the fill), as a verifier on another
	// goroutine reads ahead while rounds commit.
	slow []slowRead
}

type slowRead struct {
	key []byte
	gen uint64
	v   []byte
	ok  bool
}

var historyTables = []string{"gavel.gov.members", "gavel.gov.proposals"}

func newHistory(t testing.TB, cacheBytes int) *history {
	open := func(name string) *Store {
		s, err := Open(filepath.Join(t.TempDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	h := &history{t: t, cached: open("cached"), plain: open("plain"), model: map[string][]byte{}}
	h.cached.SetReadCache(cacheBytes)
	h.plain.SetReadCache(0)
	return h
}

// step performs one operation chosen by next (which returns 0..n-1).
func (h *history) step(next func(n int) int) {
	key := func() (string, string) {
		return historyTables[next(len(historyTables))], "k" + strconv.Itoa(next(12))
	}
	switch next(6) {
	case 2: // begin a slow read
		table, k := key()
		tk := tableKey(table, k)
		_, _, _, gen := h.cached.cache.lookup(tk)
		v, ok, err := getKey(h.cached.db, tk)
		if err != nil {
			h.t.Fatal(err)
		}
		h.slow = append(h.slow, slowRead{tk, gen, v, ok})
	case 3: // finish the slow reads
		for _, r := range h.slow {
			h.cached.cache.fill(r.key, r.gen, r.v, r.ok)
		}
		h.slow = h.slow[:0]
	case 0: // apply a run of entries
		var entries []*engine.Entry
		for range 1 + next(3) {
			h.seqno++
			e := &engine.Entry{Kind: engine.KindGovBallot, View: 1, Seqno: h.seqno}
			for range next(5) {
				table, k := key()
				w := engine.Write{Table: table, Key: k}
				switch next(6) {
				case 0:
					w.Delete = true
				case 1:
					w.Value = []byte{} // present and empty
				case 2:
					w.Value = bytes.Repeat([]byte{'L'}, readCacheMaxValue+1) // too large to keep
				default:
					w.Value = fmt.Appendf(nil, "v%d-%d", h.seqno, next(1000))
				}
				e.Writes = append(e.Writes, w)
			}
			void := next(8) == 0
			if void {
				e = engine.VoidEntry(h.seqno, 1, 0, errors.New("forged"))
				table, k := key()
				e.Writes = engine.WriteSet{{Table: table, Key: k, Value: []byte("forged")}} // never applied
			} else {
				e.Seal()
				for _, w := range e.Writes {
					if w.Delete {
						delete(h.model, w.Table+"\x00"+w.Key)
					} else {
						h.model[w.Table+"\x00"+w.Key] = w.Value
					}
				}
			}
			entries = append(entries, e)
		}
		for _, s := range []*Store{h.cached, h.plain} {
			if err := s.Apply(entries); err != nil {
				h.t.Fatal(err)
			}
		}
		h.applies++
	case 1: // list a table, or its first keys, and scribble over them
		table := historyTables[next(len(historyTables))]
		var want []string
		for _, k := range slices.Sorted(maps.Keys(h.model)) {
			if t, key, _ := strings.Cut(k, "\x00"); t == table {
				want = append(want, key+"="+string(h.model[k]))
			}
		}
		stop := len(want) + 1
		if next(3) == 0 {
			stop = next(len(want) + 1)
		}
		want = want[:min(stop, len(want))]
		for name, s := range map[string]*Store{"cached": h.cached, "plain": h.plain} {
			var got []string
			err := s.Range(table, func(k string, v []byte) bool {
				if len(got) == stop {
					return false
				}
				if v == nil {
					h.t.Fatalf("%s store: %s/%s listed as nil", name, table, k)
				}
				got = append(got, k+"="+string(v))
				for i := range v {
					v[i] = '#'
				}
				return true
			})
			if err != nil {
				h.t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				h.t.Fatalf("after %d applies, %s store lists %s as %q, want %q", h.applies, name, table, got, want)
			}
		}
	default: // read, and scribble over what was read
		table, k := key()
		want, wantOK := h.model[table+"\x00"+k]
		for name, s := range map[string]*Store{"cached": h.cached, "plain": h.plain} {
			v, ok, err := s.Get(table, k)
			if err != nil {
				h.t.Fatal(err)
			}
			if ok != wantOK || !bytes.Equal(v, want) || (ok && v == nil) || (!ok && v != nil) {
				h.t.Fatalf("after %d applies, %s store: %s/%s = %q (found %v), want %q (found %v)",
					h.applies, name, table, k, v, ok, want, wantOK)
			}
			for i := range v {
				v[i] = '#' // the caller's copy: the cache must not share it
			}
		}
	}
}

// TestReadCacheIsExact: randomized histories, with a cache that holds
// everything and one that evicts on almost every fill.
func TestReadCacheIsExact(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes int
	}{{"roomy", ReadCacheBytes}, {"tiny", 4 * readItemOverhead}} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(4) {
				h := newHistory(t, tc.bytes)
				r := rand.New(rand.NewPCG(seed, 14))
				for range 600 {
					h.step(r.IntN)
				}
				st := h.cached.ReadCache()
				if st.Hits == 0 {
					t.Fatalf("seed %d: the cache answered no read: the comparison proves nothing", seed)
				}
				if st.Bytes > tc.bytes {
					t.Fatalf("seed %d: the cache holds %d bytes, over its bound %d", seed, st.Bytes, tc.bytes)
				}
				if a, b := mustDigest(t, h.cached), mustDigest(t, h.plain); a != b {
					t.Fatalf("seed %d: the stores' digests differ", seed)
				}
			}
		})
	}
}

func mustDigest(t testing.TB, s *Store) engine.Digest {
	d, err := s.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// FuzzReadCache runs histories whose choices come from the input.
func FuzzReadCache(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 0, 0, 1, 1, 2, 5, 7, 0, 2, 1, 1})
	f.Add(bytes.Repeat([]byte{0, 3, 1, 2, 4, 1, 9}, 20))
	f.Fuzz(func(t *testing.T, choices []byte) {
		if len(choices) > 4096 {
			return
		}
		h := newHistory(t, 6*readItemOverhead)
		i := 0
		next := func(n int) int {
			if i >= len(choices) {
				return 0
			}
			i++
			return int(choices[i-1]) % n
		}
		for i < len(choices) {
			h.step(next)
		}
	})
}

// TestReadCacheSeesWhatThePositionCovers: a reader that has seen the
// store's position reads values at least as new, while Apply commits
// on another goroutine (the fill that raced a commit is dropped).
func TestReadCacheSeesWhatThePositionCovers(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 400
	var wg sync.WaitGroup
	failed := make(chan string, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			seen := s.Meta().Seqno
			v, ok, err := s.Get("t", "k")
			if err != nil {
				failed <- err.Error()
				return
			}
			got := uint64(0)
			if ok {
				got, _ = strconv.ParseUint(string(v), 10, 64)
			}
			if got < seen {
				failed <- fmt.Sprintf("at position %d the reader got the value of %d", seen, got)
				return
			}
			if seen == n {
				return
			}
		}
	}()
	for i := uint64(1); i <= n; i++ {
		e := &engine.Entry{Kind: engine.KindStatement, View: 1, Seqno: i,
			Writes: engine.WriteSet{{Table: "t", Key: "k", Value: []byte(strconv.FormatUint(i, 10))}}}
		e.Seal()
		if err := s.Apply([]*engine.Entry{e}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	select {
	case msg := <-failed:
		t.Fatal(msg)
	default:
	}
}

// TestReadCacheFill: the cache's own rules, step by step.
func TestReadCacheFill(t *testing.T) {
	c := newReadCache(1 << 20)
	k := []byte("tkey")
	_, _, hit, gen := c.lookup(k)
	if hit {
		t.Fatal("an empty cache hit")
	}
	c.committed([]cacheWrite{{key: k, value: []byte("new")}}) // an Apply wrote k while pebble was read
	c.fill(k, gen, []byte("old"), true)
	if _, _, hit, _ := c.lookup(k); hit {
		t.Fatal("a read that raced a commit of its key was kept")
	}
	_, _, _, gen = c.lookup(k)
	c.committed([]cacheWrite{{key: []byte("tother"), value: []byte("x")}}) // an Apply of other keys
	c.fill(k, gen, []byte("v1"), true)
	if v, ok, hit, _ := c.lookup(k); !hit || !ok || string(v) != "v1" {
		t.Fatalf("got %q %v %v", v, ok, hit)
	}
	c.committed([]cacheWrite{{key: k, value: []byte("v2")}, {key: k, delete: true}})
	if v, ok, hit, _ := c.lookup(k); !hit || ok || v != nil {
		t.Fatalf("the last write of a key must win: got %q %v %v", v, ok, hit)
	}
	// A table Get has read keeps its writes as written; another does not.
	c.committed([]cacheWrite{{key: []byte("tread\x00new"), value: []byte("n")}, {key: []byte("tother\x00new"), value: []byte("o")}})
	_, _, _, gen = c.lookup([]byte("tread\x00k"))
	c.fill([]byte("tread\x00k"), gen, nil, false)
	c.committed([]cacheWrite{{key: []byte("tread\x00new"), value: []byte("n")}, {key: []byte("tother\x00new"), value: []byte("o")}})
	if v, ok, hit, _ := c.lookup([]byte("tread\x00new")); !hit || !ok || string(v) != "n" {
		t.Fatalf("a write to a read table was not kept: %q %v %v", v, ok, hit)
	}
	if _, _, hit, _ := c.lookup([]byte("tother\x00new")); hit {
		t.Fatal("a write to a table never read was kept")
	}
	// Past writtenMax keys, fills begun before are refused.
	_, _, _, gen = c.lookup([]byte("tlate"))
	many := make([]cacheWrite, writtenMax)
	for i := range many {
		many[i] = cacheWrite{key: fmt.Appendf(nil, "tmany\x00%d", i), value: []byte("m")}
	}
	c.committed(many)
	c.fill([]byte("tlate"), gen, []byte("l"), true)
	if _, _, hit, _ := c.lookup([]byte("tlate")); hit {
		t.Fatal("a fill begun before the written keys were forgotten was kept")
	}
	c.reset()
	if st := c.stats(); st.Items != 0 || st.Bytes != 0 {
		t.Fatalf("reset left %+v", st)
	}
	off := newReadCache(0)
	_, _, _, gen = off.lookup(k)
	off.fill(k, gen, []byte("v"), true)
	if _, _, hit, _ := off.lookup(k); hit {
		t.Fatal("a cache of 0 bytes kept a value")
	}
}

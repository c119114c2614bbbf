package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/transparency-dev/merkle/compact"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/fold"
	"github.com/gavelhq/gavel/engine/merkle"
)

// Meta is the position of the state in the log: the fold's.
type Meta = fold.Position

// VoidRecord is a void entry: a message of the log that is not an
// authenticated entry, folded as engine.VoidLeaf and never applied.
type VoidRecord = fold.Void

// LeafRecord keeps what a receipt needs of an entry, so receipts do not
// read the log.
type LeafRecord struct {
	Kind           engine.EntryKind `cbor:"1,keyasint"`
	View           uint64           `cbor:"2,keyasint"`
	Nonce          engine.Digest    `cbor:"3,keyasint"`
	WriteSetDigest engine.Digest    `cbor:"4,keyasint"`
	ClaimsDigest   engine.Digest    `cbor:"5,keyasint"`
	TimeMillis     int64            `cbor:"6,keyasint"`
	VoidReason     string           `cbor:"7,keyasint,omitempty"` // Kind is engine.KindVoid
}

// SignatureRecord is an applied signature entry: the COSE_Sign1 over the
// root of the tree of leaves 0..Seqno-1.
type SignatureRecord struct {
	Seqno uint64 `cbor:"1,keyasint"`
	View  uint64 `cbor:"2,keyasint"`
	COSE  []byte `cbor:"3,keyasint"`
}

// CacheBytes is the block cache of the state store: the working set of
// governance tables and recent Merkle nodes stays decompressed in memory.
const CacheBytes = 256 << 20

// ErrGap is returned by Apply when entries do not follow the last applied one.
var ErrGap = fold.ErrGap

// Store is the pebble-backed state. Apply is called by one goroutine (the
// sequencer or the follower); reads may come from any goroutine.
type Store struct {
	db     *pebble.DB
	logger *slog.Logger

	mu    sync.RWMutex // guards meta and tree
	meta  Meta
	tree  *merkle.Tree
	proj  Projector  // the read model folded in each Apply batch (model.go)
	cache *readCache // table values for Get (readcache.go)
}

// Open opens (or creates) the store in dir and restores the Merkle tree's
// right border from its stored nodes.
func Open(dir string) (*Store, error) {
	cache := pebble.NewCache(CacheBytes)
	defer cache.Unref() // the DB holds its own reference
	opts := &pebble.Options{Logger: quietLogger{}, Cache: cache, MemTableSize: 64 << 20}
	// Execution reads keys that are often absent (a request's replay
	// record): bloom filters answer those without reading blocks.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	s := &Store{db: db, logger: slog.Default(), cache: newReadCache(ReadCacheBytes)}
	if v, closer, err := db.Get([]byte(keyMeta)); err == nil {
		err = engine.CBORDecode.Unmarshal(v, &s.meta)
		closer.Close()
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("state: meta: %w", err)
		}
	} else if !errors.Is(err, pebble.ErrNotFound) {
		db.Close()
		return nil, fmt.Errorf("state: meta: %w", err)
	}
	// As in CCF, leaf 0 is 32 zero bytes, so leaf index = seqno and the
	// signature at seqno S signs the tree of size S.
	if s.meta.Seqno == 0 {
		s.tree = merkle.New()
		s.tree.Append(engine.Digest{}, nil) // persisted by the first Apply
	} else {
		s.tree, err = merkle.Restore(s.meta.Seqno+1, s)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("state: restore tree at %d: %w", s.meta.Seqno, err)
	}
	return s, nil
}

// SetLogger sets where catch-up reports void entries (slog.Default by
// default). Call it before the store is used.
func (s *Store) SetLogger(l *slog.Logger) { s.logger = l }

// SetReadCache bounds the values Get keeps in memory to maxBytes (0: none
// kept) and empties it. Call it before the store is used.
func (s *Store) SetReadCache(maxBytes int) { s.cache = newReadCache(maxBytes) }

// ReadCache reports the read cache's size and hits.
func (s *Store) ReadCache() ReadCacheStats { return s.cache.stats() }

// Voids reports how many void entries the state holds and the last one.
func (s *Store) Voids() (uint64, VoidRecord) {
	m := s.Meta()
	return m.Voids, m.LastVoid
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Meta returns the last applied position.
func (s *Store) Meta() Meta {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.meta
}

// Tree returns a copy of the Merkle tree's right border at the last applied
// entry, for the sequencer to extend tentatively.
func (s *Store) Tree() *merkle.Tree {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree.Clone()
}

// Apply folds entries into the state in one pebble batch: table writes,
// Merkle nodes, leaf and signature indexes, the read model (SetProjector)
// and the new last seqno. The
// entries must be contiguous and follow Meta().Seqno. The batch is not
// synced: the log is durable, and a lost tail is replayed on open.
func (s *Store) Apply(entries []*engine.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	s.mu.RLock()
	meta := s.meta
	tree := s.tree.Clone()
	s.mu.RUnlock()

	b := s.db.NewBatch()
	defer b.Close()
	if meta.Seqno == 0 {
		var zero engine.Digest
		if err := b.Set(nodeKey(compact.NewNodeID(0, 0)), zero[:], nil); err != nil {
			return err
		}
	}
	tables := &batchTables{b: b}
	var putErr error
	putNode := func(id compact.NodeID, h engine.Digest) {
		if err := b.Set(nodeKey(id), h[:], nil); err != nil && putErr == nil {
			putErr = err
		}
	}
	for _, e := range entries {
		if err := fold.Apply(&meta, tree, tables, e, putNode); err != nil {
			return err
		}
		if putErr != nil {
			return putErr
		}
		// The store's own indexes, for receipts and lookups.
		leaf := LeafRecord{Kind: e.Kind, View: e.View, Nonce: e.Nonce, WriteSetDigest: e.WriteSetDigest,
			ClaimsDigest: e.ClaimsDigest, TimeMillis: e.TimeMillis, VoidReason: e.VoidReason}
		if err := b.Set(seqKey(prefixEntry, e.Seqno), mustCBOR(&leaf), nil); err != nil {
			return err
		}
		if e.Kind == engine.KindStatement {
			// Found again by its claims digest after an ambiguous failure.
			if err := b.Set(claimsKey(e.ClaimsDigest), seqKey(prefixClaims, e.Seqno)[1:], nil); err != nil {
				return err
			}
		}
		if e.Kind == engine.KindSignature {
			sig, _ := e.Writes.Value(engine.TableSignatures, "")
			rec := SignatureRecord{Seqno: e.Seqno, View: e.View, COSE: sig}
			if err := b.Set(seqKey(prefixSignature, e.Seqno), mustCBOR(&rec), nil); err != nil {
				return err
			}
		}
	}
	if err := s.project(b, entries); err != nil {
		return err
	}
	if err := b.Set([]byte(keyMeta), mustCBOR(&meta), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		s.cache.reset() // what the tables hold is unknown
		return fmt.Errorf("state: commit: %w", err)
	}
	// Before the position: whoever sees it reads what it covers.
	s.cache.committed(tables.writes)
	s.mu.Lock()
	s.meta, s.tree = meta, tree
	s.mu.Unlock()
	return nil
}

// batchTables writes a fold's tables into a pebble batch, and keeps the
// writes for the read cache.
type batchTables struct {
	b      *pebble.Batch
	writes []cacheWrite
}

func (t *batchTables) Set(table, key string, value []byte) error {
	k := tableKey(table, key)
	t.writes = append(t.writes, cacheWrite{key: k, value: value})
	return t.b.Set(k, value, nil)
}

func (t *batchTables) Delete(table, key string) error {
	k := tableKey(table, key)
	t.writes = append(t.writes, cacheWrite{key: k, delete: true})
	return t.b.Delete(k, nil)
}

// Get reads a table value as last committed, from the read cache when it
// holds the key. The value is the caller's to keep and change.
func (s *Store) Get(table, key string) ([]byte, bool, error) {
	k := tableKey(table, key)
	v, ok, hit, gen := s.cache.lookup(k)
	if hit {
		return v, ok, nil
	}
	v, ok, err := getKey(s.db, k)
	if err == nil {
		s.cache.fill(k, gen, v, ok)
	}
	return v, ok, err
}

// Range calls fn for each key of table in key order until fn returns false.
// A small table read to its end is kept whole in the read cache, until a
// write to it commits.
func (s *Store) Range(table string, fn func(key string, value []byte) bool) error {
	p := tablePrefix(table)
	items, hit, gen := s.cache.lookupRange(p)
	if hit {
		for _, it := range items {
			if !fn(it.key, append(make([]byte, 0, len(it.value)), it.value...)) {
				break
			}
		}
		return nil
	}
	var kept []rangeItem
	size, whole := 0, true
	err := reader{r: s.db, prefix: prefixTable}.Range(table, func(k string, v []byte) bool {
		if whole {
			if size += len(k) + len(v) + readItemOverhead; size > readRangeMaxBytes {
				whole, kept = false, nil
			} else {
				kept = append(kept, rangeItem{key: k, value: bytes.Clone(v)})
			}
		}
		if !fn(k, v) {
			whole = false
			return false
		}
		return true
	})
	if err == nil && whole {
		if kept == nil {
			kept = []rangeItem{} // an empty table is kept too
		}
		s.cache.fillRange(p, gen, kept)
	}
	return err
}

// Leaf returns the leaf record of an applied entry.
func (s *Store) Leaf(seqno uint64) (LeafRecord, bool, error) {
	var rec LeafRecord
	ok, err := s.getCBOR(seqKey(prefixEntry, seqno), &rec)
	return rec, ok, err
}

// SignatureCovering returns the first signature entry whose signed tree
// includes seqno (a signature at S signs the tree of leaves 0..S-1).
func (s *Store) SignatureCovering(seqno uint64) (SignatureRecord, bool, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: seqKey(prefixSignature, seqno+1),
		UpperBound: []byte{prefixSignature + 1},
	})
	if err != nil {
		return SignatureRecord{}, false, err
	}
	defer it.Close()
	if !it.First() {
		return SignatureRecord{}, false, it.Error()
	}
	var rec SignatureRecord
	if err := engine.CBORDecode.Unmarshal(it.Value(), &rec); err != nil {
		return rec, false, fmt.Errorf("state: signature record: %w", err)
	}
	return rec, true, nil
}

// StatementByClaimsDigest is the seqno of the latest registration of the
// statement with that claims digest.
func (s *Store) StatementByClaimsDigest(d engine.Digest) (uint64, bool, error) {
	v, closer, err := s.db.Get(claimsKey(d))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("state: claims index entry of %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// InclusionPath is the receipt path of entry seqno in the tree signed by
// the signature entry at sigSeqno.
func (s *Store) InclusionPath(seqno, sigSeqno uint64) ([]merkle.PathElem, error) {
	return merkle.InclusionPath(s, seqno, sigSeqno)
}

// RootAt is the Merkle root of the first size leaves (leaf 0 included).
func (s *Store) RootAt(size uint64) (engine.Digest, error) { return merkle.RootAt(s, size) }

// Node implements merkle.NodeReader over the stored perfect subtree nodes.
func (s *Store) Node(id compact.NodeID) (engine.Digest, bool, error) {
	var d engine.Digest
	v, closer, err := s.db.Get(nodeKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return d, false, nil
	}
	if err != nil {
		return d, false, err
	}
	defer closer.Close()
	if len(v) != len(d) {
		return d, false, fmt.Errorf("state: node %v has %d bytes", id, len(v))
	}
	copy(d[:], v)
	return d, true, nil
}

func (s *Store) getCBOR(key []byte, v any) (bool, error) {
	raw, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer closer.Close()
	if err := engine.CBORDecode.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("state: record %x: %w", key, err)
	}
	return true, nil
}

func mustCBOR(v any) []byte {
	b, err := engine.CBOR.Marshal(v)
	if err != nil {
		panic("state: record does not encode: " + err.Error())
	}
	return b
}

// quietLogger keeps pebble's chatter out of the log but not its errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	slog.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// Digest is SHA-256 over every key and value of the store, in key order:
// replicas that folded the same ledger hold equal digests, whichever of
// them executed it.
func (s *Store) Digest() (engine.Digest, error) {
	var d engine.Digest
	it, err := s.db.NewIter(nil)
	if err != nil {
		return d, err
	}
	h := sha256.New()
	var n [8]byte
	for it.First(); it.Valid(); it.Next() {
		for _, b := range [][]byte{it.Key(), it.Value()} {
			binary.BigEndian.PutUint64(n[:], uint64(len(b)))
			h.Write(n[:])
			h.Write(b)
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return d, err
	}
	copy(d[:], h.Sum(nil))
	return d, nil
}

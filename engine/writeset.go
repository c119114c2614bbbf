package engine

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"slices"

	"github.com/fxamacker/cbor/v2"
)

// Write is one change to a table. A Write with Delete set removes Key.
type Write struct {
	_      struct{} `cbor:",toarray"`
	Table  string
	Key    string
	Value  []byte // nil when Delete
	Delete bool
}

// WriteSet is the set of changes an entry makes. In canonical form it is
// sorted by (Table, Key) with one write per key, the last one winning.
type WriteSet []Write

// Canonical returns the write set sorted by (Table, Key) with duplicates
// collapsed to the last write, so equal effects have equal digests.
//
// An empty write set is always the empty (non-nil) set, so that "wrote
// nothing" has one encoding, [].
func (ws WriteSet) Canonical() WriteSet {
	if len(ws) == 0 {
		return WriteSet{}
	}
	out := slices.Clone(ws)
	slices.SortStableFunc(out, func(a, b Write) int {
		if c := cmp.Compare(a.Table, b.Table); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	// keep the last of each run of equal keys
	w := 0
	for i := range out {
		if i+1 < len(out) && out[i+1].Table == out[i].Table && out[i+1].Key == out[i].Key {
			continue
		}
		out[w] = out[i]
		w++
	}
	return out[:w]
}

// Encode returns the deterministic CBOR encoding of the canonical write set.
func (ws WriteSet) Encode() []byte {
	b, err := CBOR.Marshal(ws.Canonical())
	if err != nil {
		panic("engine: write set does not encode: " + err.Error()) // only strings and bytes inside
	}
	return b
}

// Digest is the write_set_digest of the Merkle leaf: SHA-256 of Encode().
func (ws WriteSet) Digest() Digest { return sha256.Sum256(ws.Encode()) }

// Equal reports whether two write sets have the same canonical form.
func (ws WriteSet) Equal(other WriteSet) bool { return bytes.Equal(ws.Encode(), other.Encode()) }

// CBOR is the deterministic (RFC 8949 core deterministic) encoding mode used
// for everything gavel hashes or signs.
var CBOR cbor.EncMode

// CBORDecode is the strict decoding mode for everything gavel reads back:
// no duplicate map keys, no indefinite lengths, bounded nesting.
var CBORDecode cbor.DecMode

// entryDecode is CBORDecode that also refuses fields an Entry does not have.
var entryDecode cbor.DecMode

func init() {
	var err error
	CBOR, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	CBORDecode, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  32,
		MaxArrayElements: 1 << 20,
		MaxMapPairs:      1 << 16,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	opts := CBORDecode.DecOptions()
	opts.ExtraReturnErrors = cbor.ExtraDecErrorUnknownField
	if entryDecode, err = opts.DecMode(); err != nil {
		panic(err)
	}
}

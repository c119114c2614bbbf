package merkle

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/gavelhq/gavel/engine"
)

// naive is RFC 6962's recursive definition (MTH and PATH) with CCF's hashes,
// written from the RFC text and nothing else, as the reference the compact
// range and proof code are checked against.
type naive struct {
	leaves []engine.Digest
	memo   map[[2]int]engine.Digest
}

func newNaive(leaves []engine.Digest) *naive {
	return &naive{leaves: leaves, memo: map[[2]int]engine.Digest{}}
}

// largestPow2Below is k with k < n <= 2k, for n > 1.
func largestPow2Below(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// mth is the hash of leaves[lo:hi], hi > lo.
func (t *naive) mth(lo, hi int) engine.Digest {
	if hi-lo == 1 {
		return t.leaves[lo]
	}
	if h, ok := t.memo[[2]int{lo, hi}]; ok {
		return h
	}
	k := largestPow2Below(hi - lo)
	l, r := t.mth(lo, lo+k), t.mth(lo+k, hi)
	h := engine.HashChildren(l[:], r[:])
	t.memo[[2]int{lo, hi}] = h
	return h
}

// path is PATH(m, leaves[lo:hi]) in leaf-upward order.
func (t *naive) path(m, lo, hi int) []PathElem {
	if hi-lo == 1 {
		return nil
	}
	k := largestPow2Below(hi - lo)
	if m < k {
		return append(t.path(m, lo, lo+k), PathElem{Left: false, Hash: t.mth(lo+k, hi)})
	}
	return append(t.path(m-k, lo+k, hi), PathElem{Left: true, Hash: t.mth(lo, lo+k)})
}

// testLeaves are distinct pseudo-leaf hashes: SHA-256 of the index.
func testLeaves(n int) []engine.Digest {
	out := make([]engine.Digest, n)
	for i := range out {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		out[i] = sha256.Sum256(b[:])
	}
	return out
}

// buildTree appends leaves to a new tree, storing every node in a MemNodes.
func buildTree(leaves []engine.Digest) (*Tree, MemNodes) {
	t, nodes := New(), MemNodes{}
	for _, l := range leaves {
		t.Append(l, nodes.Put)
	}
	return t, nodes
}

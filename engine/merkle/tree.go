package merkle

import (
	"github.com/gavelhq/gavel/engine"
	"github.com/transparency-dev/merkle/compact"
)

var rangeFactory = &compact.RangeFactory{Hash: hashChildren}

// Tree is the growing edge of the ledger tree: the roots of the perfect
// subtrees along its right border, O(log n) hashes. Everything below them
// lives wherever the put callback of Append stored it. A Tree is not safe
// for concurrent use.
type Tree struct {
	rng *compact.Range
}

// New returns an empty tree.
func New() *Tree { return &Tree{rng: rangeFactory.NewEmptyRange(0)} }

// Append adds a leaf hash at index Size(). put, if not nil, receives every
// node the append completes, bottom-up: the leaf itself (level 0) and then
// each perfect subtree it closes. That is 2 puts per append on average and
// at most 1+log2(n); no other node ever changes, so the caller can write
// them in the same batch as the entry's state and never rewrite one.
func (t *Tree) Append(leaf engine.Digest, put func(id compact.NodeID, hash engine.Digest)) {
	var visit compact.VisitFn
	if put != nil {
		visit = func(id compact.NodeID, hash []byte) { put(id, engine.Digest(hash)) }
	}
	// Append keeps the slice it is given, so it gets its own copy.
	if err := t.rng.Append(leaf[:], visit); err != nil {
		panic("merkle: compact range corrupted: " + err.Error()) // unreachable: New and Restore build it whole
	}
}

// Size is the number of leaves.
func (t *Tree) Size() uint64 { return t.rng.End() }

// Root is the tree's root hash, or EmptyRoot() for a tree with no leaves.
// It costs O(log n) hashes.
func (t *Tree) Root() engine.Digest {
	root, err := t.rng.GetRootHash(nil)
	if err != nil {
		panic("merkle: compact range does not start at 0: " + err.Error()) // unreachable: always starts at 0
	}
	if root == nil {
		return emptyRoot
	}
	return engine.Digest(root)
}

// Clone returns an independent copy, so a sequencer can append tentatively
// and drop the copy if its batch is refused.
func (t *Tree) Clone() *Tree {
	hashes := make([][]byte, len(t.rng.Hashes()))
	copy(hashes, t.rng.Hashes()) // the hashes themselves are never mutated
	rng, err := rangeFactory.NewRange(0, t.rng.End(), hashes)
	if err != nil {
		panic("merkle: compact range corrupted: " + err.Error()) // unreachable
	}
	return &Tree{rng: rng}
}

// Restore rebuilds the tree of the given size from its stored perfect
// nodes: the O(log n) roots of the subtrees along its right border.
func Restore(size uint64, nodes NodeReader) (*Tree, error) {
	ids := compact.RangeNodes(0, size, nil)
	hashes, err := readNodes(nodes, ids)
	if err != nil {
		return nil, err
	}
	rng, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "MerkleTreeCorrupted", err, "restoring tree of size %d", size)
	}
	return &Tree{rng: rng}, nil
}

// RootAt is the root of the tree when it had size leaves, from stored nodes
// (O(log n) reads). Size 0 gives EmptyRoot().
func RootAt(nodes NodeReader, size uint64) (engine.Digest, error) {
	t, err := Restore(size, nodes)
	if err != nil {
		return engine.Digest{}, err
	}
	return t.Root(), nil
}

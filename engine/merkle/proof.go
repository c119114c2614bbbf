package merkle

import (
	"math/bits"

	"github.com/gavelhq/gavel/engine"
	"github.com/transparency-dev/merkle/proof"
)

// PathElem is one step of an inclusion path as CCF receipts carry it: the
// sibling's hash, and Left when the sibling is the left child.
type PathElem struct {
	Left bool
	Hash engine.Digest
}

// InclusionPath is the path from leaf index to the root of the tree of the
// given size, leaf upward, in CCF receipt order. It reads O(log n) stored
// nodes and computes the one ephemeral node a non-perfect size needs.
func InclusionPath(nodes NodeReader, index, size uint64) ([]PathElem, error) {
	if index >= size {
		return nil, engine.Errorf(engine.KindInvalid, "LeafIndexOutOfRange", "leaf index %d is not in a tree of size %d", index, size)
	}
	ids, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "MerkleProofFailed", err, "inclusion of %d in %d", index, size)
	}
	hashes, err := readNodes(nodes, ids.IDs)
	if err != nil {
		return nil, err
	}
	hashes, err = ids.Rehash(hashes, hashChildren)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "MerkleProofFailed", err, "inclusion of %d in %d", index, size)
	}
	// Below the level where the paths to index and to size-1 part, the bits
	// of index say which side each sibling is on (a 1 bit: we are the right
	// child). Above it every sibling is a perfect subtree to the left.
	inner := bits.Len64(index ^ (size - 1))
	path := make([]PathElem, len(hashes))
	for i, h := range hashes {
		path[i] = PathElem{Left: i >= inner || index>>uint(i)&1 == 1, Hash: engine.Digest(h)}
	}
	return path, nil
}

// ComputeRoot folds an inclusion path over a leaf hash, as a CCF receipt
// verifier does; the result is the root the path proves the leaf under.
func ComputeRoot(leaf engine.Digest, path []PathElem) engine.Digest {
	h := leaf
	for _, p := range path {
		if p.Left {
			h = engine.HashChildren(p.Hash[:], h[:])
		} else {
			h = engine.HashChildren(h[:], p.Hash[:])
		}
	}
	return h
}

// ConsistencyProof proves that the tree of size1 is a prefix of the tree of
// size2 (RFC 6962 / RFC 9162 form, checked by VerifyConsistency). It reads
// O(log n) stored nodes.
func ConsistencyProof(nodes NodeReader, size1, size2 uint64) ([]engine.Digest, error) {
	if size1 > size2 {
		return nil, engine.Errorf(engine.KindInvalid, "InvalidTreeSize", "tree size %d is larger than %d", size1, size2)
	}
	ids, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "MerkleProofFailed", err, "consistency of %d and %d", size1, size2)
	}
	hashes, err := readNodes(nodes, ids.IDs)
	if err != nil {
		return nil, err
	}
	hashes, err = ids.Rehash(hashes, hashChildren)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "MerkleProofFailed", err, "consistency of %d and %d", size1, size2)
	}
	out := make([]engine.Digest, len(hashes))
	for i, h := range hashes {
		out[i] = engine.Digest(h)
	}
	return out, nil
}

// VerifyConsistency checks a ConsistencyProof between the roots of the trees
// of size1 and size2.
func VerifyConsistency(size1, size2 uint64, consistency []engine.Digest, root1, root2 engine.Digest) error {
	hashes := make([][]byte, len(consistency))
	for i := range consistency {
		hashes[i] = consistency[i][:]
	}
	if err := proof.VerifyConsistency(Hasher{}, size1, size2, hashes, root1[:], root2[:]); err != nil {
		return engine.Wrap(engine.KindInvalid, "InvalidConsistencyProof", err, "trees of size %d and %d", size1, size2)
	}
	return nil
}

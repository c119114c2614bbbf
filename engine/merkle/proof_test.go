package merkle

import (
	"slices"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/transparency-dev/merkle/proof"
)

func TestInclusionPathMatchesNaiveForEveryPair(t *testing.T) {
	const n = 300
	leaves := testLeaves(n)
	ref := newNaive(leaves)
	_, nodes := buildTree(leaves)
	for size := 1; size <= n; size++ {
		root := ref.mth(0, size)
		for index := 0; index < size; index++ {
			got, err := InclusionPath(nodes, uint64(index), uint64(size))
			if err != nil {
				t.Fatalf("path(%d, %d): %v", index, size, err)
			}
			if want := ref.path(index, 0, size); !slices.Equal(got, want) {
				t.Fatalf("path(%d, %d) =\n%v\nwant\n%v", index, size, got, want)
			}
			if ComputeRoot(leaves[index], got) != root {
				t.Fatalf("path(%d, %d) does not lead to the root", index, size)
			}
		}
	}
}

// The paths also satisfy the transparency-dev RFC 6962 verifier run with
// CCF's hasher, so Hasher is a faithful merkle.LogHasher.
func TestInclusionPathPassesLibraryVerifier(t *testing.T) {
	const n = 70
	leaves := testLeaves(n)
	tree, nodes := buildTree(leaves)
	root := tree.Root()
	for index := range n {
		path, err := InclusionPath(nodes, uint64(index), n)
		if err != nil {
			t.Fatal(err)
		}
		hashes := make([][]byte, len(path))
		for i := range path {
			hashes[i] = path[i].Hash[:]
		}
		if err := proof.VerifyInclusion(Hasher{}, uint64(index), n, leaves[index][:], hashes, root[:]); err != nil {
			t.Fatalf("index %d: %v", index, err)
		}
		other := leaves[(index+1)%n]
		if proof.VerifyInclusion(Hasher{}, uint64(index), n, other[:], hashes, root[:]) == nil {
			t.Fatalf("index %d: path proves the wrong leaf", index)
		}
	}
}

func TestComputeRootDetectsTampering(t *testing.T) {
	leaves := testLeaves(11)
	tree, nodes := buildTree(leaves)
	path, err := InclusionPath(nodes, 6, 11)
	if err != nil {
		t.Fatal(err)
	}
	for i := range path {
		flipped := slices.Clone(path)
		flipped[i].Left = !flipped[i].Left
		if ComputeRoot(leaves[6], flipped) == tree.Root() {
			t.Errorf("side of step %d flipped, root unchanged", i)
		}
		changed := slices.Clone(path)
		changed[i].Hash[0] ^= 1
		if ComputeRoot(leaves[6], changed) == tree.Root() {
			t.Errorf("hash of step %d changed, root unchanged", i)
		}
	}
}

func TestInclusionPathErrors(t *testing.T) {
	_, nodes := buildTree(testLeaves(10))
	tests := []struct {
		index, size uint64
		code        string
	}{
		{10, 10, "LeafIndexOutOfRange"},
		{0, 0, "LeafIndexOutOfRange"},
		{3, 11, "MerkleNodeMissing"}, // size 11 was never stored
	}
	for _, tc := range tests {
		_, err := InclusionPath(nodes, tc.index, tc.size)
		if e := engine.AsError(err); err == nil || e.Code != tc.code {
			t.Errorf("InclusionPath(%d, %d) err = %v, want %s", tc.index, tc.size, err, tc.code)
		}
	}
	if e := engine.AsError(func() error { _, err := InclusionPath(nodes, 10, 10); return err }()); e.Kind != engine.KindInvalid {
		t.Errorf("out of range is kind %v, want KindInvalid", e.Kind)
	}
}

func TestConsistencyProofs(t *testing.T) {
	const n = 100
	leaves := testLeaves(n)
	ref := newNaive(leaves)
	_, nodes := buildTree(leaves)
	root := func(size uint64) engine.Digest {
		if size == 0 {
			return EmptyRoot()
		}
		return ref.mth(0, int(size))
	}
	for size1 := uint64(0); size1 <= n; size1++ {
		for size2 := size1; size2 <= n; size2++ {
			p, err := ConsistencyProof(nodes, size1, size2)
			if err != nil {
				t.Fatalf("proof(%d, %d): %v", size1, size2, err)
			}
			if err := VerifyConsistency(size1, size2, p, root(size1), root(size2)); err != nil {
				t.Fatalf("proof(%d, %d) does not verify: %v", size1, size2, err)
			}
			if size1 == 0 || size1 == size2 {
				continue
			}
			// A different first root (a forked history) must fail.
			forked := root(size1)
			forked[31] ^= 1
			err = VerifyConsistency(size1, size2, p, forked, root(size2))
			if e := engine.AsError(err); err == nil || e.Code != "InvalidConsistencyProof" {
				t.Fatalf("proof(%d, %d) accepted a forked root: %v", size1, size2, err)
			}
		}
	}
	_, err := ConsistencyProof(nodes, 5, 4)
	if e := engine.AsError(err); err == nil || e.Code != "InvalidTreeSize" {
		t.Fatalf("size1 > size2 err = %v, want InvalidTreeSize", err)
	}
}

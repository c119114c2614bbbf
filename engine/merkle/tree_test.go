package merkle

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/transparency-dev/merkle/compact"
)

func TestRootMatchesNaiveAtEverySize(t *testing.T) {
	leaves := testLeaves(300)
	ref := newNaive(leaves)
	tree := New()
	if got := tree.Root(); got != EmptyRoot() {
		t.Fatalf("empty root = %x, want %x", got, EmptyRoot())
	}
	for n := 1; n <= len(leaves); n++ {
		tree.Append(leaves[n-1], nil)
		if tree.Size() != uint64(n) {
			t.Fatalf("size = %d, want %d", tree.Size(), n)
		}
		if got, want := tree.Root(), ref.mth(0, n); got != want {
			t.Fatalf("root at size %d = %x, want %x", n, got, want)
		}
	}
}

func TestSmallTreesByHand(t *testing.T) {
	a, b, c := testLeaves(3)[0], testLeaves(3)[1], testLeaves(3)[2]
	ab := engine.HashChildren(a[:], b[:])
	tests := []struct {
		leaves []engine.Digest
		want   engine.Digest
	}{
		{[]engine.Digest{a}, a}, // a single leaf is its own root, unhashed
		{[]engine.Digest{a, b}, ab},
		{[]engine.Digest{a, b, c}, engine.HashChildren(ab[:], c[:])},
	}
	for _, tc := range tests {
		tree, _ := buildTree(tc.leaves)
		if got := tree.Root(); got != tc.want {
			t.Errorf("root of %d leaves = %x, want %x", len(tc.leaves), got, tc.want)
		}
	}
}

// Every perfect subtree inside the tree is handed to put exactly once, with
// its true hash, and nothing else is.
func TestAppendPutsEveryPerfectNodeOnce(t *testing.T) {
	const n = 300
	leaves := testLeaves(n)
	ref := newNaive(leaves)
	tree := New()
	seen := map[compact.NodeID]int{}
	var order []compact.NodeID
	for i, l := range leaves {
		order = order[:0]
		tree.Append(l, func(id compact.NodeID, h engine.Digest) {
			seen[id]++
			order = append(order, id)
			lo, hi := id.Coverage()
			if hi > uint64(i+1) {
				t.Fatalf("append %d put node %+v covering [%d,%d) beyond the tree", i, id, lo, hi)
			}
			if want := ref.mth(int(lo), int(hi)); h != want {
				t.Fatalf("node %+v = %x, want %x", id, h, want)
			}
		})
		if order[0] != compact.NewNodeID(0, uint64(i)) {
			t.Fatalf("append %d: first put %+v, want the leaf", i, order[0])
		}
		for j := 1; j < len(order); j++ {
			if order[j] != order[j-1].Parent() {
				t.Fatalf("append %d: puts %v are not bottom-up parents", i, order)
			}
		}
	}
	want := 0
	for level := uint(0); 1<<level <= n; level++ {
		for index := uint64(0); (index+1)<<level <= n; index++ {
			want++
			if c := seen[compact.NewNodeID(level, index)]; c != 1 {
				t.Fatalf("node level %d index %d put %d times, want 1", level, index, c)
			}
		}
	}
	if len(seen) != want {
		t.Fatalf("%d distinct nodes put, want %d", len(seen), want)
	}
}

func TestAppendWritesAtMostTwoNodesPerLeafOnAverage(t *testing.T) {
	const n = 100_000
	tree, puts, most := New(), 0, 0
	for _, l := range testLeaves(n) {
		before := puts
		tree.Append(l, func(compact.NodeID, engine.Digest) { puts++ })
		most = max(most, puts-before)
	}
	if avg := float64(puts) / n; avg > 2 {
		t.Fatalf("%.4f puts per append, want <= 2", avg)
	}
	if most > 17 { // 1 + log2(100000) rounded down
		t.Fatalf("one append put %d nodes, want <= 17", most)
	}
}

func TestRestoreContinuesIdentically(t *testing.T) {
	leaves := testLeaves(400)
	full, nodes := buildTree(leaves)
	roots := make([]engine.Digest, len(leaves)+1)
	{
		tr := New()
		roots[0] = tr.Root()
		for i, l := range leaves {
			tr.Append(l, nil)
			roots[i+1] = tr.Root()
		}
	}
	if full.Root() != roots[len(leaves)] {
		t.Fatal("tree built twice disagrees with itself")
	}
	for size := 0; size <= 300; size++ {
		restored, err := Restore(uint64(size), nodes)
		if err != nil {
			t.Fatalf("restore %d: %v", size, err)
		}
		if restored.Size() != uint64(size) || restored.Root() != roots[size] {
			t.Fatalf("restore %d: size %d root %x, want root %x", size, restored.Size(), restored.Root(), roots[size])
		}
		got, err := RootAt(nodes, uint64(size))
		if err != nil || got != roots[size] {
			t.Fatalf("RootAt(%d) = %x, %v; want %x", size, got, err, roots[size])
		}
		for i := size; i < len(leaves); i++ {
			restored.Append(leaves[i], func(id compact.NodeID, h engine.Digest) {
				if nodes[id] != h {
					t.Fatalf("restore %d, append %d: node %+v = %x, stored %x", size, i, id, h, nodes[id])
				}
			})
			if restored.Root() != roots[i+1] {
				t.Fatalf("restore %d, append %d: root differs", size, i)
			}
		}
	}
}

func TestRestoreMissingNode(t *testing.T) {
	_, nodes := buildTree(testLeaves(13)) // 13 = 8 + 4 + 1
	delete(nodes, compact.NewNodeID(2, 2))
	_, err := Restore(13, nodes)
	if e := engine.AsError(err); e.Code != "MerkleNodeMissing" || e.Kind != engine.KindInternal {
		t.Fatalf("err = %v, want MerkleNodeMissing", err)
	}
	if _, err := Restore(8, nodes); err != nil {
		t.Fatalf("size 8 does not need the deleted node: %v", err)
	}
}

type failingReader struct{ err error }

func (f failingReader) Node(compact.NodeID) (engine.Digest, bool, error) {
	return engine.Digest{}, false, f.err
}

func TestReaderErrors(t *testing.T) {
	plain := failingReader{fmt.Errorf("disk on fire")}
	if e := engine.AsError(func() error { _, err := Restore(5, plain); return err }()); e.Code != "MerkleNodeReadFailed" {
		t.Errorf("untyped reader error gave %v, want MerkleNodeReadFailed", e)
	}
	typed := failingReader{engine.Errorf(engine.KindUnavailable, "StoreClosed", "closed")}
	if e := engine.AsError(func() error { _, err := InclusionPath(typed, 1, 5); return err }()); e.Code != "StoreClosed" {
		t.Errorf("typed reader error gave %v, want it passed through", e)
	}
}

func TestCloneIsIndependent(t *testing.T) {
	leaves := testLeaves(40)
	orig, _ := buildTree(leaves[:21])
	c := orig.Clone()
	for _, l := range leaves[21:30] {
		c.Append(l, nil)
	}
	for _, l := range leaves[21:] {
		orig.Append(l, nil)
	}
	ref := newNaive(leaves)
	if orig.Root() != ref.mth(0, 40) || c.Root() != ref.mth(0, 30) {
		t.Fatal("clone and original interfere")
	}
}

func TestHasher(t *testing.T) {
	var h Hasher
	if got, want := h.EmptyRoot(), sha256.Sum256(nil); !slices.Equal(got, want[:]) {
		t.Errorf("EmptyRoot = %x, want SHA-256 of nothing", got)
	}
	if h.Size() != 32 {
		t.Errorf("Size = %d", h.Size())
	}
	wsd, cd := testLeaves(2)[0], testLeaves(2)[1]
	ce := "ce:2.7:" + fmt.Sprintf("%064x", 7)
	ceHash := sha256.Sum256([]byte(ce))
	preimage := slices.Concat(wsd[:], ceHash[:], cd[:])
	if got, want := h.HashLeaf(preimage), engine.LeafHash(wsd, ce, cd); !slices.Equal(got, want[:]) {
		t.Errorf("HashLeaf = %x, want engine.LeafHash %x", got, want)
	}
	want := engine.HashChildren(wsd[:], cd[:])
	if got := h.HashChildren(wsd[:], cd[:]); !slices.Equal(got, want[:]) {
		t.Errorf("HashChildren = %x, want %x", got, want)
	}
}

package merkle

import (
	"fmt"
	"sync"
	"testing"
)

// prebuilt trees, built once per process: building 1M leaves takes a second.
var (
	prebuiltMu sync.Mutex
	prebuilt   = map[int]*Tree{}
)

func treeOfSize(n int) *Tree {
	prebuiltMu.Lock()
	defer prebuiltMu.Unlock()
	if t, ok := prebuilt[n]; ok {
		return t.Clone()
	}
	t := New()
	for _, l := range testLeaves(n) {
		t.Append(l, nil)
	}
	prebuilt[n] = t
	return t.Clone()
}

// BenchmarkAppend appends to trees that already hold 10k and 1M leaves,
// storing every node in MemNodes: the cost per append does not depend on
// the size.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			tree, nodes := treeOfSize(size), MemNodes{}
			leaves := testLeaves(1 << 12)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				tree.Append(leaves[i&(len(leaves)-1)], nodes.Put)
			}
			b.ReportMetric(float64(len(nodes))/float64(b.N), "puts/op")
		})
	}
}

func BenchmarkRoot(b *testing.B) {
	tree := treeOfSize(1_000_000)
	b.ReportAllocs()
	for range b.N {
		_ = tree.Root()
	}
}

func BenchmarkInclusionPath(b *testing.B) {
	const size = 100_000
	_, nodes := buildTree(testLeaves(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := InclusionPath(nodes, uint64(i*7919)%size, size); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRestore(b *testing.B) {
	const size = 100_000
	_, nodes := buildTree(testLeaves(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := Restore(size-uint64(i%1000), nodes); err != nil {
			b.Fatal(err)
		}
	}
}

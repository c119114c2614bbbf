package netmap_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/netmap"
)

// mapOf publishes n nodes into a fresh state.
func mapOf(b *testing.B, n int) (constitution.MemState, []*testNode) {
	b.Helper()
	lim := netmap.DefaultLimits()
	st := genesisState(b, baseParams())
	nodes := make([]*testNode, n)
	for i := range nodes {
		nd := newNode(b, fmt.Sprintf("n%d", i), "ES256")
		putNode(st, nd, netmap.StatusTrusted)
		v, err := netmap.VerifyNodeInfo(nd.sign(b, nd.info(1)), dir(st), lim)
		if err != nil {
			b.Fatal(err)
		}
		eff, err := netmap.Publish{Info: v}.Execute(st, facts(uint64(i+2), t0))
		if err != nil {
			b.Fatal(err)
		}
		st.Apply(eff.Writes)
		nodes[i] = nd
	}
	return st, nodes
}

// The work one publish adds at 10,000 nodes: execute (verified NodeInfo
// in hand) and apply its writes.
func BenchmarkPublishAt10k(b *testing.B) {
	st, nodes := mapOf(b, 10_000)
	lim := netmap.DefaultLimits()
	nd, serial := nodes[0], int64(1)
	var infos []netmap.VerifiedNodeInfo
	more := func() {
		infos = infos[:0]
		for range 256 {
			serial++
			v, err := netmap.VerifyNodeInfo(nd.sign(b, nd.info(serial)), dir(st), lim)
			if err != nil {
				b.Fatal(err)
			}
			infos = append(infos, v)
		}
	}
	more()
	seq := uint64(20_000)
	for b.Loop() {
		if len(infos) == 0 {
			b.StopTimer()
			more()
			b.StartTimer()
		}
		seq++
		eff, err := netmap.Publish{Info: infos[0]}.Execute(st, facts(seq, t0.Add(time.Second)))
		if err != nil {
			b.Fatal(err)
		}
		st.Apply(eff.Writes)
		infos = infos[1:]
	}
}

// The read side's full recomputation of the map payload at 10,000 nodes.
func BenchmarkMapAt10k(b *testing.B) {
	st, _ := mapOf(b, 10_000)
	b.ResetTimer()
	for b.Loop() {
		m, err := netmap.Map(st, dir(st), t0.Add(time.Hour))
		if err != nil || len(m.NodeInfoHashes) != 10_000 {
			b.Fatal(len(m.NodeInfoHashes), err)
		}
		_ = m.Encode()
	}
}

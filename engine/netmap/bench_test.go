package netmap_test

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"

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

// A flag day at 10,000 nodes, half of which accepted: the entry itself
// (its writes do not depend on the number of nodes) and the map's
// recomputation after it.
func BenchmarkFlagDayAt10k(b *testing.B) {
	lim := netmap.DefaultLimits()
	st, nodes := mapOf(b, 10_000)
	args := []byte(`{"parameters":{"minimum_platform_version":1,"notaries":[],"max_message_size":1,"max_transaction_size":1},"description":"","update_deadline":"2026-01-02T00:00:00Z"}`)
	u, err := netmap.ParseSetParameters(args, lim)
	if err != nil {
		b.Fatal(err)
	}
	ws, pend, err := u.Apply(st, facts(20_000, t0), lim)
	if err != nil {
		b.Fatal(err)
	}
	st.Apply(ws)
	for i, n := range nodes[:5_000] {
		raw, _ := netmap.SignAck(n.key, pend.NewParametersHash)
		v, err := netmap.VerifyAck(raw, dir(st))
		if err != nil {
			b.Fatal(err)
		}
		eff, err := netmap.Ack{Ack: v}.Execute(st, facts(uint64(20_001+i), t0))
		if err != nil {
			b.Fatal(err)
		}
		st.Apply(eff.Writes)
	}
	day := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	cmd := netmap.FlagDay{Hash: pend.NewParametersHash}
	for b.Loop() {
		after := constitution.MemState{}
		eff, err := cmd.Execute(st, facts(30_000, day))
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		for t, keys := range st {
			after[t] = keys // shared: the flag day's writes go to tables it replaces whole below
		}
		for _, t := range []string{netmap.TableCurrent, netmap.TableEpochs, netmap.TablePending} {
			after[t] = map[string][]byte{}
			for k, v := range st[t] {
				after[t][k] = v
			}
		}
		after.Apply(eff.Writes)
		b.StartTimer()
		m, err := netmap.Map(after, dir(after), day)
		if err != nil || len(m.NodeInfoHashes) != 5_000 || len(eff.Writes) != 3 {
			b.Fatal(len(m.NodeInfoHashes), len(eff.Writes), err)
		}
	}
}

// What one publish adds to the next map read at 10,000 nodes: its writes
// folded into the index and the map signed again. "kept" signs the kept
// encoding (one copy, one hash); "reencoded" is the read path before it:
// the hash list sorted and JSON-encoded, signed, hashed again for the ETag.
func BenchmarkMapAfterPublishAt10k(b *testing.B) {
	keys := newMapKeys(b)
	signer, err := netmap.NewMapSigner(keys.key, keys.chain)
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"kept", "reencoded"} {
		b.Run(mode, func(b *testing.B) {
			st, nodes := mapOf(b, 10_000)
			x, err := netmap.BuildIndex(st, dir(st), t0)
			if err != nil {
				b.Fatal(err)
			}
			lim := netmap.DefaultLimits()
			serial, seq := int64(1), uint64(20_000)
			var pending []engine.WriteSet
			for b.Loop() {
				if len(pending) == 0 {
					b.StopTimer()
					serial++
					for _, nd := range nodes[:256] {
						v, err := netmap.VerifyNodeInfo(nd.sign(b, nd.info(serial)), dir(st), lim)
						if err != nil {
							b.Fatal(err)
						}
						seq++
						eff, err := netmap.Publish{Info: v}.Execute(st, facts(seq, t0.Add(time.Second)))
						if err != nil {
							b.Fatal(err)
						}
						pending = append(pending, eff.Writes)
					}
					b.StartTimer()
				}
				ws := pending[0]
				pending = pending[1:]
				st.Apply(ws)
				if ok, err := x.Apply(st, dir(st), ws, t0.Add(time.Second)); err != nil || !ok {
					b.Fatal(ok, err)
				}
				if mode == "kept" {
					if _, err := signer.Sign(x); err != nil {
						b.Fatal(err)
					}
					continue
				}
				payload := x.Payload().Encode()
				if _, err := netmap.SignMap(keys.key, keys.chain, payload); err != nil {
					b.Fatal(err)
				}
				_ = sha256.Sum256(payload)
			}
		})
	}
}

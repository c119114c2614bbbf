package sequencer

import (
	"fmt"
	"testing"

	"github.com/gavelhq/gavel/engine"
)

// BenchmarkCorePlan is the core's cost of planning a full round (999
// requests, a signature entry, encoding), without the log or the store.
func BenchmarkCorePlan(b *testing.B) {
	cfg := DefaultConfig()
	cfg.SignEvery = cfg.MaxBatch - 1 // every round signs
	h := newCoreHost(b, cfg, 1)
	reqs := make([]*request, cfg.MaxBatch-1)
	for i := range reqs {
		reqs[i] = &request{cmd: kput{fmt.Sprint(i), fmt.Sprint(i), string(make([]byte, 1500))}}
	}
	nonces := make([]engine.Digest, len(reqs)+1)
	for i := range nonces {
		nonces[i] = h.nonce()
	}
	in := planInput{ledger: h.applied.base(), now: h.now, reqs: reqs, nonces: nonces}
	b.ResetTimer()
	for b.Loop() {
		r, err := h.c.plan(in)
		if err != nil {
			b.Fatal(err)
		}
		if err := h.c.signed(r, []byte("sig"), nil); err != nil {
			b.Fatal(err)
		}
		if err := r.encode(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(reqs)), "ns/entry")
}

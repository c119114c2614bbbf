package gov_test

import (
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
)

// BenchmarkBallotExecute is the sequencer's cost of one ballot: the
// ballots re-run, resolve, and (every second ballot) apply, against a
// three-member service with the default constitution.
func BenchmarkBallotExecute(b *testing.B) {
	var members []*govreq.Member
	var initial []gov.InitialMember
	for i := range 3 {
		c, k, err := govreq.Keygen("ES256", fmt.Sprint("m", i))
		if err != nil {
			b.Fatal(err)
		}
		m, _ := govreq.LoadMember(c, k)
		members = append(members, m)
		initial = append(initial, gov.InitialMember{CertPEM: c})
	}
	module, err := constitution.DefaultModule()
	if err != nil {
		b.Fatal(err)
	}
	cfg := gov.DefaultConfig()
	cfg.MaxOpenProposals = b.N + 1
	ws, err := gov.GenesisWrites(initial, module, cfg)
	if err != nil {
		b.Fatal(err)
	}
	st := constitution.MemState{}
	st.Apply(ws)
	now := time.Now()
	seq := uint64(1)
	exec := func(cmd engine.Command) {
		seq++
		eff, err := cmd.Execute(st, engine.Facts{TxID: engine.TxID{View: 1, Seqno: seq}, Time: now})
		if err != nil {
			b.Fatal(err)
		}
		st.Apply(eff.Writes)
	}
	yes, _ := json.Marshal(map[string]string{"ballot": "export function vote() { return true; }"})
	var ballots []engine.Command
	for i := 0; len(ballots) < b.N; i++ {
		body := fmt.Sprintf(`{"actions":[{"name":"set_node_join_policy","args":{"policy":"p%d"}}]}`, i)
		raw, _ := members[0].Sign(govreq.MsgProposal, "", now, []byte(body))
		req, err := gov.Verify(st, raw, govreq.MsgProposal, 0)
		if err != nil {
			b.Fatal(err)
		}
		exec(gov.Propose{Req: req})
		for _, m := range members[1:] {
			raw, _ := m.Sign(govreq.MsgBallot, govreq.ProposalID(raw), now, yes)
			req, err := gov.Verify(st, raw, govreq.MsgBallot, 0)
			if err != nil {
				b.Fatal(err)
			}
			ballots = append(ballots, gov.Vote{Req: req})
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	prepared := constitution.PreparedCalls()
	start := processCPU()
	for i := range b.N {
		exec(ballots[i])
	}
	b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(constitution.PreparedCalls()-prepared)/float64(b.N), "prepared/op")
}

// processCPU is the process's CPU time (user+system, GC and the
// background preparer included): "cpu-ns/op" is less sensitive than wall
// time to other load on a shared machine.
func processCPU() time.Duration {
	var r syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

package gov_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/state"
)

// ballotBench is a three-member service with the default constitution
// and n proposals, each with two ballots to cast: the first of every
// proposal, then the second (which accepts it, so it also runs apply), as
// `gavel bench gov` casts them.
type ballotBench struct {
	b       *testing.B
	st      benchState
	now     time.Time
	seq     uint64
	ballots []engine.Command
	execCPU time.Duration // this thread's CPU inside Execute
}

// benchState is the state a benchmark executes on: in memory, or the
// pebble store the sequencer reads through.
type benchState interface {
	engine.StateReader
	apply(seqno uint64, ws engine.WriteSet)
}

type memBench struct{ constitution.MemState }

func (m memBench) apply(_ uint64, ws engine.WriteSet) { m.Apply(ws) }

type storeBench struct {
	*state.Store
	b *testing.B
}

func (s storeBench) apply(seqno uint64, ws engine.WriteSet) {
	e := &engine.Entry{Kind: engine.KindGovBallot, View: 1, Seqno: seqno, Writes: slices.Clone(ws)}
	e.Seal()
	if err := s.Apply([]*engine.Entry{e}); err != nil {
		s.b.Fatal(err)
	}
}

func newStoreBench(b *testing.B, readCache int) benchState {
	s, err := state.Open(filepath.Join(b.TempDir(), "state"))
	if err != nil {
		b.Fatal(err)
	}
	s.SetReadCache(readCache)
	b.Cleanup(func() { s.Close() })
	return storeBench{s, b}
}

// newGovBench is a three-member service with the default constitution,
// room for n open proposals.
func newGovBench(b *testing.B, n int, st benchState) (*ballotBench, []*govreq.Member) {
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
	cfg.MaxOpenProposals = n + 1
	ws, err := gov.GenesisWrites(initial, module, cfg)
	if err != nil {
		b.Fatal(err)
	}
	bb := &ballotBench{b: b, st: st, now: time.Now(), seq: 1}
	bb.st.apply(1, ws)
	return bb, members
}

func newBallotBench(b *testing.B, n int, st benchState) *ballotBench {
	bb, members := newGovBench(b, n, st)
	yes, _ := json.Marshal(map[string]string{"ballot": "export function vote() { return true; }"})
	second := make([]engine.Command, 0, n)
	for i := range n {
		body := fmt.Sprintf(`{"actions":[{"name":"set_node_join_policy","args":{"policy":"p%d"}}]}`, i)
		raw, _ := members[0].Sign(govreq.MsgProposal, "", bb.now, []byte(body))
		req, err := gov.Verify(bb.st, raw, govreq.MsgProposal, 0)
		if err != nil {
			b.Fatal(err)
		}
		bb.exec(gov.Propose{Req: req})
		for j, m := range members[1:] {
			raw, _ := m.Sign(govreq.MsgBallot, govreq.ProposalID(raw), bb.now, yes)
			req, err := gov.Verify(bb.st, raw, govreq.MsgBallot, 0)
			if err != nil {
				b.Fatal(err)
			}
			if j == 0 {
				bb.ballots = append(bb.ballots, gov.Vote{Req: req})
			} else {
				second = append(second, gov.Vote{Req: req})
			}
		}
	}
	bb.ballots = append(bb.ballots, second...)
	return bb
}

func (bb *ballotBench) exec(cmd engine.Command) {
	bb.seq++
	t0 := threadCPU()
	eff, err := cmd.Execute(bb.st, engine.Facts{TxID: engine.TxID{View: 1, Seqno: bb.seq}, Time: bb.now})
	bb.execCPU += threadCPU() - t0
	if err != nil {
		bb.b.Fatal(err)
	}
	bb.st.apply(bb.seq, eff.Writes)
}

// BenchmarkBallotExecute is the sequencer's cost of one ballot: the
// ballots re-run, resolve, and (every second ballot) apply.
func BenchmarkBallotExecute(b *testing.B) {
	b.Run("mem", func(b *testing.B) { benchBallots(b, memBench{constitution.MemState{}}) })
	b.Run("store", func(b *testing.B) { benchBallots(b, newStoreBench(b, state.ReadCacheBytes)) })
	b.Run("store-uncached", func(b *testing.B) { benchBallots(b, newStoreBench(b, 0)) })
}

func benchBallots(b *testing.B, st benchState) {
	runtime.LockOSThread() // threadCPU is this goroutine's
	defer runtime.UnlockOSThread()
	bb := newBallotBench(b, (b.N+1)/2, st)
	b.ReportAllocs()
	b.ResetTimer()
	bb.execCPU = 0
	prepared := constitution.PreparedCalls()
	start := processCPU()
	for i := range b.N {
		bb.exec(bb.ballots[i])
	}
	b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(bb.execCPU)/float64(b.N), "exec-cpu-ns/op")
	b.ReportMetric(float64(constitution.PreparedCalls()-prepared)/float64(b.N), "prepared/op")
}

// threadCPU is the calling thread's CPU time (user+system): locked to its
// thread, the benchmark's goroutine is the sequencer's, and
// "exec-cpu-ns/op" is what one ballot costs it, GC assists included,
// background GC and preparing excluded.
func threadCPU() time.Duration {
	var r syscall.Rusage
	_ = syscall.Getrusage(rusageThread, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// rusageThread is Linux's RUSAGE_THREAD.
const rusageThread = 1

// BenchmarkProposeExecute is the sequencer's cost of one proposal as
// `gavel bench gov` sends them: a new join policy each, so validate
// checks that it compiles. Verify (on the request's goroutine, untimed)
// compiles it ahead ("warm"); "cold" keeps no compiled policy, as before.
func BenchmarkProposeExecute(b *testing.B) {
	for _, warm := range []bool{true, false} {
		b.Run(map[bool]string{true: "warm", false: "cold"}[warm], func(b *testing.B) {
			constitution.SetJoinPolicyCache(warm)
			defer constitution.SetJoinPolicyCache(true)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			bb, members := newGovBench(b, b.N, newStoreBench(b, state.ReadCacheBytes))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				body := fmt.Sprintf(`{"actions":[{"name":"set_node_join_policy","args":{"policy":"export function apply() { return true; } // %d"}}]}`, i)
				raw, _ := members[0].Sign(govreq.MsgProposal, "", bb.now, []byte(body))
				req, err := gov.Verify(bb.st, raw, govreq.MsgProposal, 0)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				bb.exec(gov.Propose{Req: req})
			}
			b.ReportMetric(float64(bb.execCPU)/float64(b.N), "exec-cpu-ns/op")
		})
	}
}

// processCPU is the process's CPU time (user+system, GC and the
// background preparer included): "cpu-ns/op" is less sensitive than wall
// time to other load on a shared machine.
func processCPU() time.Duration {
	var r syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

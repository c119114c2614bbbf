package constitution

import "testing"

// The sequencer runs, per ballot, Ballot.Vote then Constitution.Resolve;
// both must stay far below the cost of verifying the ballot's signature.

func BenchmarkResolve(b *testing.B) {
	ms := members(b, 3)
	c := defaultConstitution(b)
	e := env(stateWithMembers(b, ms))
	p := proposal(b, action("remove_node_join_policy", nil))
	votes := []Vote{{ms[0].id, true}, {ms[1].id, false}}
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		s, err := c.Resolve(e, p, ms[0].id, votes, "p1")
		if err != nil || s != ProposalOpen {
			b.Fatal(s, err)
		}
	}
	reportCPU(b, start)
}

func BenchmarkBallotVote(b *testing.B) {
	bl := ballot(b, `export function vote(proposal, proposerId) { return true; }`)
	e := env(MemState{})
	p := proposal(b, action("remove_node_join_policy", nil))
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		v, err := bl.Vote(e, p, "m")
		if err != nil || !v {
			b.Fatal(v, err)
		}
	}
	reportCPU(b, start)
}

func BenchmarkConditionalBallotVote(b *testing.B) {
	ms := members(b, 3)
	bl := ballot(b, `export function vote(proposal, proposerId) {
		const p = JSON.parse(proposal);
		return p.actions.every((a) => a.name === "remove_node_join_policy") && gavel.kv.has("gov.members", proposerId);
	}`)
	e := env(stateWithMembers(b, ms))
	p := proposal(b, action("remove_node_join_policy", nil))
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		v, err := bl.Vote(e, p, ms[0].id)
		if err != nil || !v {
			b.Fatal(v, err)
		}
	}
	reportCPU(b, start)
}

func BenchmarkValidate(b *testing.B) {
	ms := members(b, 3)
	c := defaultConstitution(b)
	e := env(stateWithMembers(b, ms))
	p := proposal(b, action("add_snp_measurement", map[string]any{"measurement": hex96}))
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		r, err := c.Validate(e, p)
		if err != nil || !r.Valid {
			b.Fatal(r, err)
		}
	}
	reportCPU(b, start)
}

func BenchmarkApply(b *testing.B) {
	ms := members(b, 3)
	c := defaultConstitution(b)
	e := env(stateWithMembers(b, ms))
	p := proposal(b, action("add_snp_measurement", map[string]any{"measurement": hex96}))
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		ws, err := c.Apply(e, p, "p1")
		if err != nil || len(ws) != 1 {
			b.Fatal(ws, err)
		}
	}
	reportCPU(b, start)
}

func BenchmarkCompileBallotCached(b *testing.B) {
	src := `export function vote() { return true; }`
	ballot(b, src)
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		if _, err := CompileBallot(src); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// BenchmarkNewSandbox is the one-off cost of a pooled runtime: goja setup,
// guards and freezing the realm.
func BenchmarkNewSandbox(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := newSandbox(); err != nil {
			b.Fatal(err)
		}
	}
}

// The caller's allocations when an instance was prepared ahead
// (prepare.go): the preparing is left out of the timing, as it runs off
// the caller's path. Stopping the timer costs a few microseconds per
// iteration, so compare allocs/op, not ns/op, with the inline benchmarks.

func benchPrepared(b *testing.B, mod *module, lim Limits, call func()) {
	SetPrepareMode(prepareByHand)
	defer SetPrepareMode(PrepareAhead)
	drainPreparer()
	b.ReportAllocs()
	before := preparedCalls.Load()
	for b.Loop() {
		b.StopTimer()
		prepareOne(prepareRequest{mod: mod, limits: lim.withDefaults()})
		b.StartTimer()
		call()
	}
	if n := preparedCalls.Load() - before; n != int64(b.N) {
		b.Fatalf("%d of %d calls used a prepared instance", n, b.N)
	}
}

func BenchmarkResolvePrepared(b *testing.B) {
	ms := members(b, 3)
	c := defaultConstitution(b)
	e := env(stateWithMembers(b, ms))
	p := proposal(b, action("remove_node_join_policy", nil))
	votes := []Vote{{ms[0].id, true}, {ms[1].id, false}}
	benchPrepared(b, c.resolve, e.Limits, func() {
		if s, err := c.Resolve(e, p, ms[0].id, votes, "p1"); err != nil || s != ProposalOpen {
			b.Fatal(s, err)
		}
	})
}

func BenchmarkApplyPrepared(b *testing.B) {
	ms := members(b, 3)
	c := defaultConstitution(b)
	e := env(stateWithMembers(b, ms))
	p := proposal(b, action("add_snp_measurement", map[string]any{"measurement": hex96}))
	benchPrepared(b, c.apply, e.Limits, func() {
		if ws, err := c.Apply(e, p, "p1"); err != nil || len(ws) != 1 {
			b.Fatal(ws, err)
		}
	})
}

func BenchmarkBallotVotePrepared(b *testing.B) {
	bl := ballot(b, `export function vote(proposal, proposerId) { return true; }`)
	e := env(MemState{})
	p := proposal(b, action("remove_node_join_policy", nil))
	benchPrepared(b, bl.mod, e.Limits, func() {
		if v, err := bl.Vote(e, p, "m"); err != nil || !v {
			b.Fatal(v, err)
		}
	})
}

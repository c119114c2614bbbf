package gov

import (
	"crypto/sha256"
	"slices"
	"sync/atomic"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/internal/bounded"
)

// Speculative votes (issue 14). The sequencer executes one request at a
// time, and a vote's execution — its ballots, resolve, apply, the
// proposal's record — is most of its time. So the handler that verified a
// ballot also executes it ahead, on its own goroutine, against the state
// as committed then (Speculate), recording every read (and whether any
// script read the time or logged: then nothing is kept). When the
// sequencer executes the vote, it replays the kept outcome if every read
// still returns the same bytes in its state: a vote is a pure function of
// the request, the state it read and the entry's facts, so the outcome is
// exactly the recomputed one. Of the facts only the time is used, by the
// created_at window, which the replay checks again; a proposal with
// network-map actions (whose apply takes the facts) is never kept. The
// number of open proposals changes with every other decision, so finish's
// count is read at replay, not speculated. Anything else that changed —
// another ballot on the same proposal landed first, a member left —
// makes the sequencer execute the vote itself. The auditor never
// speculates.

// specCacheSize bounds the outcomes kept: a few rounds of requests.
const specCacheSize = 4096

type specKey struct {
	request [32]byte // SHA-256 of the signed envelope
	limits  constitution.Limits
}

// speculation is a vote executed ahead, up to finish.
type speculation struct {
	obs    *constitution.Observation
	held   held
	window time.Duration // the replay window the execution read
}

// held is what finish would write: the writes so far, the change to the
// number of open proposals and the answer.
type held struct {
	writes    engine.WriteSet
	openDelta int
	answer    []byte
}

var (
	speculations  = bounded.New[specKey, *speculation](specCacheSize)
	specOff       atomic.Bool  // tests compare runs with and without
	specsReplayed atomic.Int64 // votes the sequencer did not execute itself
)

// SpeculationsReplayed is how many votes were answered from their
// speculative execution since the process started.
func SpeculationsReplayed() int64 { return specsReplayed.Load() }

// Speculate executes cmd ahead of the sequencer, if it is a vote, on st
// at about the time now, and keeps its outcome for Execute. It has no
// effect besides: a failure or a refusal is simply not kept.
func Speculate(st engine.StateReader, cmd engine.Command, now time.Time) {
	c, ok := cmd.(Vote)
	if !ok || specOff.Load() {
		return
	}
	obs := constitution.NewObservation()
	sp := &speculation{obs: obs}
	r := &run{st: obs.Reader(st), facts: engine.Facts{Time: now}, limits: c.Limits, obs: obs, held: &sp.held}
	eff, err := c.execute(r)
	if err != nil || eff.Replayed || r.factBound || !obs.Reusable() || sp.held.answer == nil {
		return
	}
	sp.window = time.Duration(r.cfg.ReplayWindowSeconds) * time.Second
	speculations.Put(specKey{sha256.Sum256(c.Req.Raw), c.Limits}, sp)
}

// replaySpeculation is the vote's effect from its speculation, if one is
// kept and every read it made returns the same in st; it is then dropped,
// so each serves one execution.
func (c Vote) replaySpeculation(st engine.StateReader, f engine.Facts) (engine.Effect, bool) {
	if specOff.Load() {
		return engine.Effect{}, false
	}
	sp, ok := speculations.Take(specKey{sha256.Sum256(c.Req.Raw), c.Limits})
	if !ok {
		return engine.Effect{}, false
	}
	if govreq.CheckCreatedAt(c.Req.CreatedAt, f.Time, sp.window) != nil {
		return engine.Effect{}, false
	}
	if same, err := sp.obs.Unchanged(st); err != nil || !same {
		return engine.Effect{}, false
	}
	r := &run{st: st, facts: f, limits: c.Limits, writes: slices.Clone(sp.held.writes), openDelta: sp.held.openDelta}
	eff, err := r.finishWith(c.Req, sp.held.answer)
	if err != nil {
		return engine.Effect{}, false
	}
	specsReplayed.Add(1)
	return eff, true
}

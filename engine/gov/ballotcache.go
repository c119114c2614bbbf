package gov

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync/atomic"

	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/internal/bounded"
)

// Ballot results (issue 14): every vote re-runs every ballot of its
// proposal, but a ballot's outcome is a pure function of the ballot, the
// proposal, the proposer, the budget, the constitution in force (for
// gavel.constitution.check) and the state it read — not of who cast it,
// which a ballot cannot know, so members casting the same ballot share it. So an outcome is kept
// with what the ballot read (constitution.Observation) and reused while
// the state still holds the same values there. Only results are kept: a
// tripped safety net or a storage failure is a refusal and is never
// reused. A reused outcome is exactly the recomputed one, so write sets do
// not depend on the cache, and the auditor (whose cache starts empty)
// re-derives them bit for bit.

// ballotCacheSize bounds the kept outcomes: a few per open proposal's
// ballots is plenty.
const ballotCacheSize = 8192

type ballotOutcome struct {
	vote bool
	err  error // a recorded script failure, never a refusal
	obs  *constitution.Observation
}

var (
	ballotOutcomes  = bounded.New[[32]byte, ballotOutcome](ballotCacheSize)
	ballotCacheOff  atomic.Bool  // tests compare runs with and without
	ballotCacheHits atomic.Int64 // outcomes reused
)

// BallotOutcomesReused is how many ballot outcomes were reused instead of
// recomputed since the process started.
func BallotOutcomesReused() int64 { return ballotCacheHits.Load() }

// ballotKey names everything a ballot's outcome depends on besides state.
func ballotKey(b *constitution.Ballot, con *constitution.Constitution, opts constitution.RuntimeOptions, p *Proposal) [32]byte {
	h := sha256.New()
	bh, ch := b.Hash(), con.Hash()
	h.Write(bh[:])
	h.Write(ch[:])
	for _, n := range []int64{opts.MaxFuel, int64(opts.MaxCallDepth), int64(opts.MaxStringLength),
		int64(opts.MaxArrayLength), int64(opts.MaxNestingDepth), int64(opts.MaxLogBytes)} {
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], uint64(n))
		h.Write(buf[:])
	}
	writeLP(h, p.ProposerID)
	writeLP(h, p.Body)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func writeLP(h hash.Hash, s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}

// vote runs ballot b on p, or reuses its outcome if nothing it read has
// changed. The error is a refusal (refusal(err)) or a recorded failure.
func (r *run) vote(env constitution.Env, con *constitution.Constitution, b *constitution.Ballot, p *Proposal) (bool, error) {
	if ballotCacheOff.Load() {
		return b.Vote(env, p.Body, p.ProposerID)
	}
	key := ballotKey(b, con, r.opts, p)
	if o, ok := ballotOutcomes.Get(key); ok {
		same, err := o.obs.Unchanged(env.State)
		if err != nil {
			return false, err
		}
		if same {
			ballotCacheHits.Add(1)
			return o.vote, o.err
		}
	}
	v, obs, err := b.VoteObserved(env, p.Body, p.ProposerID)
	if (err == nil || !refusal(err)) && obs.Reusable() {
		ballotOutcomes.Put(key, ballotOutcome{vote: v, err: err, obs: obs})
	}
	return v, err
}

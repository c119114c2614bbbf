package gov

import "github.com/gavelhq/gavel/engine/internal/bounded"

// SetBallotCache turns the reuse of ballot outcomes on or off and empties
// the cache, as in a fresh process. Tests only: not safe while executing.
func SetBallotCache(on bool) {
	ballotCacheOff.Store(!on)
	ballotOutcomes = bounded.New[[32]byte, ballotOutcome](ballotCacheSize)
}

// SetRecordCache turns the kept decoded proposal records on or off and
// empties them, as in a fresh process. Tests only: not safe while
// executing.
func SetRecordCache(on bool) {
	recordCacheOff.Store(!on)
	decodedProposals = bounded.New[[32]byte, *Proposal](proposalCacheSize)
}

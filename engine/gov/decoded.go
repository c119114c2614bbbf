package gov

import (
	"crypto/sha256"
	"maps"
	"slices"
	"sync/atomic"
	"unicode/utf8"

	"github.com/gavelhq/gavel/engine/internal/bounded"
)

// Decoded proposal records (issue 14). Every ballot and withdrawal decodes
// its proposal's record, which the request before it wrote; decoding the
// JSON costs a sixth of a ballot's execution. So whoever encodes a record
// keeps what its bytes decode to, by the SHA-256 of the bytes, and a load
// of the same bytes takes a copy. The kept value is exactly the decoded
// one (decodedForm, checked against json.Unmarshal by a fuzz test): no
// write set or answer depends on whether the cache held it, and the
// auditor, whose cache starts empty, decodes every record itself.

// proposalCacheSize bounds the kept records: enough for every open
// proposal of a busy service (default max_open_proposals is 1000; the
// benchmark keeps 5,000 open). maxDecodedBytes bounds the record kept, so
// the cache holds at most proposalCacheSize × maxDecodedBytes of text.
const (
	proposalCacheSize = 8192
	maxDecodedBytes   = 4 << 10
)

var (
	decodedProposals = bounded.New[[32]byte, *Proposal](proposalCacheSize)
	recordCacheOff   atomic.Bool  // tests compare runs with and without
	recordCacheHits  atomic.Int64 // loads served from the cache
)

// DecodedRecordsReused is how many proposal records were loaded from their
// kept decoded form instead of decoded since the process started.
func DecodedRecordsReused() int64 { return recordCacheHits.Load() }

// keepDecoded keeps p's decoded form under the digest of b, its record.
func keepDecoded(b []byte, p *Proposal) {
	if recordCacheOff.Load() || len(b) > maxDecodedBytes {
		return
	}
	if d, ok := decodedForm(p); ok {
		decodedProposals.Put(sha256.Sum256(b), d)
	}
}

// decodedProposal is a copy of the kept decoded form of record b.
func decodedProposal(b []byte) (*Proposal, bool) {
	if recordCacheOff.Load() || len(b) > maxDecodedBytes {
		return nil, false
	}
	d, ok := decodedProposals.Get(sha256.Sum256(b))
	if !ok {
		return nil, false
	}
	recordCacheHits.Add(1)
	return d.clone(), true
}

// decodedForm is what loadProposal returns for p's record: encoding/json
// drops empty omitempty maps, keeps nil and empty slices apart, and turns
// invalid UTF-8 into U+FFFD — a proposal holding any is not kept (ok
// false), rare enough not to model.
func decodedForm(p *Proposal) (d *Proposal, ok bool) {
	if !validText(p) {
		return nil, false
	}
	d = p.clone()
	if len(d.FinalVotes) == 0 {
		d.FinalVotes = nil
	}
	if len(d.VoteFailures) == 0 {
		d.VoteFailures = nil
	}
	if d.Ballots == nil {
		d.Ballots = map[string]string{}
	}
	return d, true
}

func validText(p *Proposal) bool {
	for _, s := range []string{p.ProposalID, p.ProposerID, p.State, p.CreatedTxID, p.Body} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	if p.Failure != nil && !utf8.ValidString(p.Failure.Reason) {
		return false
	}
	for _, s := range p.BallotSubmitters {
		if !utf8.ValidString(s) {
			return false
		}
	}
	for k := range p.FinalVotes {
		if !utf8.ValidString(k) {
			return false
		}
	}
	for k, f := range p.VoteFailures {
		if !utf8.ValidString(k) || !utf8.ValidString(f.Reason) {
			return false
		}
	}
	for k, v := range p.Ballots {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return false
		}
	}
	return true
}

// clone copies p deeply: callers change the proposal they load.
func (p *Proposal) clone() *Proposal {
	c := *p
	c.BallotSubmitters = slices.Clone(p.BallotSubmitters)
	c.FinalVotes = maps.Clone(p.FinalVotes)
	c.VoteFailures = maps.Clone(p.VoteFailures)
	c.Ballots = maps.Clone(p.Ballots)
	if p.Failure != nil {
		f := *p.Failure
		c.Failure = &f
	}
	return &c
}

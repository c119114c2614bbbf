package govreq

import (
	"time"

	"github.com/gavelhq/gavel/engine"
)

// CheckCreatedAt is the replay window on ccf.gov.msg.created_at: a request
// is accepted iff now−window ≤ createdAt ≤ now+window (createdAt in Unix
// seconds; a negative window counts as zero). Outside it the error is
// ProposalCreatedTooLongAgo (CCF's code) or ProposalCreatedInFuture, both
// KindInvalid. Catching an identical envelope sent twice inside the window
// is the caller's job.
func CheckCreatedAt(createdAt int64, now time.Time, window time.Duration) error {
	window = max(window, 0)
	oldest, newest := now.Add(-window), now.Add(window)
	// createdAt is whole seconds: it is before oldest when it is below
	// oldest's second, or equal to it while oldest is past that second.
	if lo := oldest.Unix(); createdAt < lo || (createdAt == lo && oldest.Nanosecond() > 0) {
		return engine.Errorf(engine.KindInvalid, "ProposalCreatedTooLongAgo",
			"created_at %d is before the start of the window, %s", createdAt, oldest.UTC().Format(time.RFC3339Nano))
	}
	if createdAt > newest.Unix() {
		return engine.Errorf(engine.KindInvalid, "ProposalCreatedInFuture",
			"created_at %d is after the end of the window, %s", createdAt, newest.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

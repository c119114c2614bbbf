package govreq

import (
	"math"
	"testing"
	"time"
)

func TestCheckCreatedAt(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	half := time.Unix(1_700_000_000, 500_000_000) // now + 0.5 s
	const w = 10 * time.Minute
	cases := []struct {
		name      string
		createdAt int64
		now       time.Time
		window    time.Duration
		code      string
	}{
		{"now", 1_700_000_000, now, w, ""},
		{"oldest second in the window", 1_700_000_000 - 600, now, w, ""},
		{"one second too old", 1_700_000_000 - 601, now, w, "ProposalCreatedTooLongAgo"},
		{"newest second in the window", 1_700_000_000 + 600, now, w, ""},
		{"one second in the future too far", 1_700_000_000 + 601, now, w, "ProposalCreatedInFuture"},
		{"zero window, same second", 1_700_000_000, now, 0, ""},
		{"zero window, a second late", 1_700_000_000 - 1, now, 0, "ProposalCreatedTooLongAgo"},
		{"zero window, a second early", 1_700_000_000 + 1, now, 0, "ProposalCreatedInFuture"},
		{"negative window counts as zero", 1_700_000_000 - 1, now, -time.Hour, "ProposalCreatedTooLongAgo"},
		{"sub-second now: the window starts mid-second", 1_700_000_000 - 600, half, w, "ProposalCreatedTooLongAgo"},
		{"sub-second now: next second is inside", 1_700_000_000 - 599, half, w, ""},
		{"sub-second now: end floors", 1_700_000_000 + 600, half, w, ""},
		{"sub-second now: past the end", 1_700_000_000 + 601, half, w, "ProposalCreatedInFuture"},
		{"epoch", 0, now, w, "ProposalCreatedTooLongAgo"},
		{"far future", math.MaxInt64, now, w, "ProposalCreatedInFuture"},
		{"milliseconds by mistake", 1_700_000_000_000, now, w, "ProposalCreatedInFuture"},
		{"huge window", 0, now, 100 * 365 * 24 * time.Hour, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if code := codeOf(CheckCreatedAt(c.createdAt, c.now, c.window)); code != c.code {
				t.Fatalf("got %q, want %q", code, c.code)
			}
		})
	}
}

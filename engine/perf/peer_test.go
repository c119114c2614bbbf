package perf

import (
	"testing"
	"time"
)

func TestLagTrackerMatchesEachAnswerToTheFirstCoveringCheckpoint(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	l := &lagTracker{
		moves: []lagMove{{0, at(0)}, {10, at(100)}, {25, at(300)}},
		answers: []lagMove{
			{5, at(40)},   // covered by size 10 at 100 ms: 60 ms
			{10, at(90)},  // size 10 covers it: 10 ms
			{11, at(120)}, // needs 25, published at 300 ms: 180 ms
			{25, at(310)}, // published before its answer was seen: 0
			{30, at(400)}, // never covered: until polling ended at 1000 ms
		},
		end: at(1000),
	}
	got := l.summary()
	want := Latency{P50: 60 * time.Millisecond, P99: 600 * time.Millisecond, Max: 600 * time.Millisecond}
	if got != want {
		t.Fatalf("summary = %+v, want %+v", got, want)
	}
}

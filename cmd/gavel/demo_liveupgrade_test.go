package main

import (
	"testing"
	"time"
)

// The longest write gap of a window is the longest interval between
// consecutive acknowledgements that overlaps it: a stall that began
// before the window and ended inside it counts, one wholly outside does
// not.
func TestLongestGap(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms ...int) *luLoad {
		l := &luLoad{}
		for _, m := range ms {
			l.acks = append(l.acks, luAck{at: t0.Add(time.Duration(m) * time.Millisecond)})
		}
		return l
	}
	ms := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Millisecond) }
	for _, c := range []struct {
		name     string
		acks     *luLoad
		from, to time.Time
		gap      time.Duration
		began    time.Time
	}{
		{"no acks", at(), ms(0), ms(1000), 0, time.Time{}},
		{"one ack", at(10), ms(0), ms(1000), 0, time.Time{}},
		{"whole run", at(0, 10, 500, 520), time.Time{}, ms(1000), 490 * time.Millisecond, ms(10)},
		{"inside", at(0, 100, 150, 400, 410), ms(120), ms(420), 250 * time.Millisecond, ms(150)},
		{"began before the window", at(0, 10, 900, 910), ms(500), ms(1000), 890 * time.Millisecond, ms(10)},
		{"ended after the window", at(0, 10, 900, 910), ms(0), ms(20), 890 * time.Millisecond, ms(10)},
		{"outside, before", at(0, 800, 810, 820), ms(805), ms(830), 10 * time.Millisecond, ms(800)},
		{"outside, after", at(0, 10, 20, 900), ms(0), ms(15), 10 * time.Millisecond, ms(0)},
		{"first of equal gaps", at(0, 100, 200), ms(0), ms(200), 100 * time.Millisecond, ms(0)},
	} {
		t.Run(c.name, func(t *testing.T) {
			gap, began := c.acks.longestGapLocked(c.from, c.to)
			if gap != c.gap || !began.Equal(c.began) {
				t.Fatalf("gap %v from %v, want %v from %v", gap, began.Sub(t0), c.gap, c.began.Sub(t0))
			}
		})
	}
}

// A report breaks a promise exactly when a write was lost or duplicated,
// a read failed, the roots differ or a stream is held elsewhere; the
// timing figures are never a verdict.
func TestLiveUpgradeVerdict(t *testing.T) {
	good := func() *LiveUpgradeReport {
		return &LiveUpgradeReport{RootsEqual: true, StreamPeersAllB: true, LongestWriteGapMs: 5000,
			PrimaryChanges: []LiveUpgradePrimaryChange{{LongestWriteGapMs: 900}}}
	}
	for _, c := range []struct {
		name  string
		spoil func(*LiveUpgradeReport)
		want  string
	}{
		{"kept", func(*LiveUpgradeReport) {}, ""},
		{"lost", func(r *LiveUpgradeReport) { r.WritesLost = 2 }, "2 writes lost"},
		{"duplicated", func(r *LiveUpgradeReport) { r.Duplicates = 1 }, "1 duplicates"},
		{"read failed", func(r *LiveUpgradeReport) { r.ReadsFailed = 3 }, "3 reads failed"},
		{"roots", func(r *LiveUpgradeReport) { r.RootsEqual = false }, "replay roots differ"},
		{"streams", func(r *LiveUpgradeReport) { r.StreamPeersAllB = false }, "a stream is held by a server that is not a B replica's"},
		{"two", func(r *LiveUpgradeReport) { r.WritesLost, r.RootsEqual = 1, false }, "1 writes lost, replay roots differ"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := good()
			c.spoil(r)
			if got := r.verdict(); got != c.want {
				t.Fatalf("verdict %q, want %q", got, c.want)
			}
		})
	}
}

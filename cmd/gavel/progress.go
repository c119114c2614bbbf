package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gavelhq/gavel/engine/perf"
)

// progress reports long work (audit replay, projections rebuild,
// bootstrap, benchmarks). On a terminal it redraws one line, "label
// n/total (pct) rate/s, time left", at most five times a second. Elsewhere
// it is quiet, unless JSON lines were asked for (an explicit --json): then
// it writes one JSON object a second and a last one when done.
type progress struct {
	w      io.Writer
	label  string
	unit   string
	total  uint64
	mode   progressMode
	start  time.Time
	last   time.Time
	n      uint64
	drawn  bool
	now    func() time.Time
	minGap time.Duration
}

type progressMode int

const (
	progressQuiet progressMode = iota
	progressTerminal
	progressJSON
)

// progressLine is one JSON line of progress.
type progressLine struct {
	Progress   string   `json:"progress"`
	Done       uint64   `json:"done"`
	Total      uint64   `json:"total,omitempty"`
	Unit       string   `json:"unit"`
	Rate       float64  `json:"rate_per_second"`
	Elapsed    float64  `json:"elapsed_seconds"`
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
	Finished   bool     `json:"finished,omitempty"`
}

// newProgress reports to w as label, counting unit ("entries"). total 0
// means unknown (no percentage, no time left).
func newProgress(w io.Writer, label string, total uint64) *progress {
	return newProgressMode(w, label, "entries", total, false)
}

// newProgressMode is newProgress with the unit and whether JSON lines were
// asked for.
func newProgressMode(w io.Writer, label, unit string, total uint64, jsonLines bool) *progress {
	p := &progress{w: w, label: label, unit: unit, total: total, now: time.Now}
	switch {
	case isTerminal(w):
		p.mode, p.minGap = progressTerminal, 200*time.Millisecond
	case jsonLines:
		p.mode, p.minGap = progressJSON, time.Second
	}
	p.start = p.now()
	return p
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// jsonFlagSet reports whether --json was given on the command line (not
// merely defaulted): only then does progress print JSON lines.
func jsonFlagSet(fs *flag.FlagSet) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "json" && f.Value.String() == "true" {
			set = true
		}
	})
	return set
}

// add counts n more done.
func (p *progress) add(n uint64) {
	if p != nil {
		p.set(p.n + n)
	}
}

// set says n are done. A nil progress reports nothing.
func (p *progress) set(n uint64) {
	if p == nil {
		return
	}
	p.n = n
	if p.mode == progressQuiet {
		return
	}
	now := p.now()
	if now.Sub(p.last) < p.minGap {
		return
	}
	p.last = now
	p.write(now, false)
}

// rate is units per second so far, and the time left at that rate (-1
// when unknown).
func (p *progress) rate(now time.Time) (float64, time.Duration) {
	el := now.Sub(p.start).Seconds()
	if el <= 0 {
		return 0, -1
	}
	r := float64(p.n) / el
	if p.total == 0 || r <= 0 || p.n > p.total {
		return r, -1
	}
	return r, time.Duration(float64(p.total-p.n) / r * float64(time.Second))
}

func (p *progress) write(now time.Time, finished bool) {
	r, left := p.rate(now)
	switch p.mode {
	case progressTerminal:
		p.drawn = true
		line := fmt.Sprintf("\r\033[K%s %d", p.label, p.n)
		if p.total > 0 {
			line += fmt.Sprintf("/%d (%.1f%%)", p.total, 100*float64(p.n)/float64(p.total))
		}
		line += fmt.Sprintf(" %s, %.0f/s", p.unit, r)
		if left >= 0 {
			line += ", " + left.Round(time.Second).String() + " left"
		}
		fmt.Fprint(p.w, line)
	case progressJSON:
		l := progressLine{Progress: p.label, Done: p.n, Total: p.total, Unit: p.unit, Rate: r,
			Elapsed: now.Sub(p.start).Seconds(), Finished: finished}
		if left >= 0 && !finished {
			s := left.Seconds()
			l.ETASeconds = &s
		}
		b, _ := json.Marshal(l)
		fmt.Fprintf(p.w, "%s\n", b)
	}
}

// done clears the terminal line, or writes the last JSON line.
func (p *progress) done() {
	if p == nil {
		return
	}
	switch p.mode {
	case progressTerminal:
		if p.drawn {
			fmt.Fprint(p.w, "\r\033[K")
		}
	case progressJSON:
		p.write(p.now(), true)
	}
}

// benchProgress shows a benchmark's load phases, one progress line each
// (quiet off a terminal unless --json was given).
func benchProgress(w io.Writer, jsonLines bool) perf.ProgressFunc {
	var cur *progress
	var phase string
	return func(name string, done, total int) {
		if name == phase && cur == nil {
			return // this phase has finished
		}
		if name != phase {
			cur.done()
			cur, phase = newProgressMode(w, name, "calls", uint64(total), jsonLines), name
		}
		cur.set(uint64(done))
		if done >= total {
			cur.done()
			cur = nil
		}
	}
}

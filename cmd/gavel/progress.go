package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress shows "label n/total" on a terminal, at most five times a
// second; it prints nothing when errOut is not a terminal.
type progress struct {
	w      io.Writer
	label  string
	total  uint64
	last   time.Time
	active bool
}

func newProgress(w io.Writer, label string, total uint64) *progress {
	p := &progress{w: w, label: label, total: total}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.active = true
		}
	}
	return p
}

func (p *progress) set(n uint64) {
	if !p.active || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(n) / float64(p.total)
	}
	fmt.Fprintf(p.w, "\r%s %d/%d (%.1f%%)", p.label, n, p.total, pct)
}

func (p *progress) done() {
	if p.active && !p.last.IsZero() {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

// fakeClock steps by a fixed amount on every reading.
type fakeClock struct {
	t    time.Time
	step time.Duration
}

func (c *fakeClock) now() time.Time { c.t = c.t.Add(c.step); return c.t }

func testProgress(w io.Writer, mode progressMode, total uint64, step time.Duration) *progress {
	c := &fakeClock{t: time.Unix(1_700_000_000, 0), step: step}
	p := newProgressMode(w, "replay", "entries", total, false)
	p.mode, p.now, p.start = mode, c.now, c.t
	p.minGap = map[progressMode]time.Duration{progressTerminal: 200 * time.Millisecond, progressJSON: time.Second}[mode]
	return p
}

func TestProgressModes(t *testing.T) {
	for _, c := range []struct {
		name  string
		mode  progressMode
		total uint64
		check func(t *testing.T, out string)
	}{
		{"quiet off a terminal", progressQuiet, 100, func(t *testing.T, out string) {
			if out != "" {
				t.Errorf("wrote %q", out)
			}
		}},
		{"terminal: rate and time left, cleared at the end", progressTerminal, 100, func(t *testing.T, out string) {
			// One unit per second of fake time: the first draw at 10 of 100.
			if !strings.Contains(out, "replay 10/100 (10.0%) entries, 1/s, 1m30s left") {
				t.Errorf("no rate and time left in %q", out)
			}
			if !strings.HasSuffix(out, "\r\033[K") {
				t.Errorf("the line is not cleared: %q", out)
			}
		}},
		{"terminal, unknown total", progressTerminal, 0, func(t *testing.T, out string) {
			if strings.Contains(out, "left") || strings.Contains(out, "%") || !strings.Contains(out, "replay 10 entries") {
				t.Errorf("%q", out)
			}
		}},
		{"JSON lines", progressJSON, 100, func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) < 2 {
				t.Fatalf("lines %q", lines)
			}
			var first, last progressLine
			if json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[len(lines)-1]), &last) != nil {
				t.Fatalf("not JSON: %q", lines)
			}
			if first.Progress != "replay" || first.Done != 10 || first.Total != 100 || first.ETASeconds == nil || *first.ETASeconds != 90 || first.Rate != 1 {
				t.Errorf("first line %+v", first)
			}
			if !last.Finished || last.Done != 100 || last.ETASeconds != nil {
				t.Errorf("last line %+v", last)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			// Ten seconds pass before the first report (a step per reading).
			p := testProgress(&buf, c.mode, c.total, 10*time.Second)
			for n := uint64(10); n <= 100; n += 10 {
				p.set(n)
			}
			p.done()
			c.check(t, buf.String())
		})
	}
}

func TestProgressNilAndFlags(t *testing.T) {
	var p *progress
	p.set(1)
	p.add(1)
	p.done()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Bool("json", true, "")
	if jsonFlagSet(fs) {
		t.Error("a defaulted --json asks for JSON progress")
	}
	fs.Parse([]string{"--json"})
	if !jsonFlagSet(fs) {
		t.Error("an explicit --json does not ask for JSON progress")
	}
	if newProgress(&bytes.Buffer{}, "x", 1).mode != progressQuiet {
		t.Error("progress to a buffer is not quiet")
	}
}

// A benchmark's phases each end in one finished JSON line, whatever the
// reporter repeats after the end.
func TestBenchProgressOneLinePerPhase(t *testing.T) {
	var buf bytes.Buffer
	f := benchProgress(&buf, true)
	for _, phase := range []string{"gavel.submit.statement", "half load"} {
		f(phase, 0, 50)
		f(phase, 25, 50)
		f(phase, 50, 50)
		f(phase, 50, 50) // the reporter's last call after its loop ended
	}
	var finished []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var pl progressLine
		if err := json.Unmarshal([]byte(l), &pl); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		if pl.Finished {
			if pl.Done != 50 || pl.Total != 50 {
				t.Errorf("finished line %+v", pl)
			}
			finished = append(finished, pl.Progress)
		}
	}
	if len(finished) != 2 || finished[0] != "gavel.submit.statement" || finished[1] != "half load" {
		t.Fatalf("finished lines for %q, want one per phase", finished)
	}
}

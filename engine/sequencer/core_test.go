package sequencer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/gavelhq/gavel/engine"
)

// script runs lines of the core language on h, failing on a stop.
func script(t *testing.T, h *coreHost, lines ...string) string {
	t.Helper()
	var out strings.Builder
	for _, l := range lines {
		datadriven.RunTestFromString(t, l+"\n----\n", func(t *testing.T, td *datadriven.TestData) string {
			h.t = t
			s := h.run(td)
			out.WriteString(s + "\n")
			return td.Expected
		})
	}
	return out.String()
}

// Every outcome of the log for a flight of two requests (a, b) with a
// pending round (c) planned on top of it: what the core answers, what it
// executes again, and whether it stops or calls the write path faulty.
func TestAdvanceEveryOutcome(t *testing.T) {
	for _, tc := range []struct {
		name    string
		before  []string // after the flight and pending are planned
		outcome func(h *coreHost) ready
		landed  bool
		answers map[string]string // name → describe()
		redo    []string
		stop    string // Code
		fault   string // Code
	}{
		{"ack", nil, func(h *coreHost) ready { return h.land(&strings.Builder{}, 2, nil, false, false) },
			true, map[string]string{"a": "2.1", "b": "2.2"}, nil, "", ""},
		{"in doubt, landed", nil, func(h *coreHost) ready { return h.land(&strings.Builder{}, 2, errInDoubt, false, false) },
			true, map[string]string{"a": "2.1", "b": "2.2"}, nil, "", ""},
		{"in doubt, not landed", nil, func(h *coreHost) ready { return h.land(&strings.Builder{}, 0, errInDoubt, false, false) },
			false, map[string]string{}, []string{"a", "b", "c"}, "", ""},
		{"in doubt, partly landed", nil, func(h *coreHost) ready { return h.land(&strings.Builder{}, 1, errInDoubt, false, false) },
			false, map[string]string{"a": "2.1"}, []string{"b", "c"}, "", ""},
		{"refused by another writer", []string{"foreign x"}, func(h *coreHost) ready { return h.land(&strings.Builder{}, 0, errWrongLast, false, false) },
			false, map[string]string{}, []string{"a", "b", "c"}, "", ""},
		{"refused, but it had landed", nil, func(h *coreHost) ready { return h.land(&strings.Builder{}, 2, errWrongLast, false, false) },
			true, map[string]string{"a": "2.1", "b": "2.2"}, nil, "", ""},
		{"newer view", []string{"foreign x view=3"}, func(h *coreHost) ready { return h.land(&strings.Builder{}, 0, errWrongLast, false, false) },
			false, map[string]string{"a": "NotPrimary", "b": "NotPrimary", "c": "NotPrimary"}, nil, "NotPrimary", ""},
		{"older view wrote", []string{"foreign x view=1"}, func(h *coreHost) ready { return h.land(&strings.Builder{}, 0, errWrongLast, false, false) },
			false, map[string]string{}, []string{"a", "b", "c"}, "", ""},
		{"storage full", nil, func(h *coreHost) ready { return h.land(&strings.Builder{}, 0, errFull, false, false) },
			false, map[string]string{"a": "StorageFull", "b": "StorageFull", "c": "StorageFull"}, nil, "", "StorageFull"},
		{"log unreadable", nil, func(h *coreHost) ready { return h.land(&strings.Builder{}, 0, errInDoubt, true, false) },
			false, map[string]string{"a": "LogUnavailable", "b": "LogUnavailable", "c": "LogUnavailable"}, nil, "", "LogUnavailable"},
		{"apply failed", nil, func(h *coreHost) ready { return h.land(&strings.Builder{}, 2, nil, false, true) },
			true, map[string]string{"a": "2.1", "b": "2.2", "c": "SequencerStopped"}, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newCoreHost(t, DefaultConfig(), 2)
			script(t, h, "config view=2 sign-interval-ms=60000", "submit a b", "plan", "submit c", "plan")
			script(t, h, tc.before...)
			rd := tc.outcome(h)
			h.check()
			if rd.landed != tc.landed {
				t.Fatalf("landed %v, want %v", rd.landed, tc.landed)
			}
			got := map[string]string{}
			for name, res := range h.answers {
				got[name] = describe(res)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.answers) {
				t.Fatalf("answers %v, want %v", got, tc.answers)
			}
			if redo := h.namesOf(h.c.redo); !slices.Equal(redo, tc.redo) && len(redo)+len(tc.redo) > 0 {
				t.Fatalf("executed again %v, want %v", redo, tc.redo)
			}
			if code := engine.AsError(rd.stop).Code; rd.stop != nil && code != tc.stop || rd.stop == nil && tc.stop != "" {
				t.Fatalf("stop %v, want %s", rd.stop, tc.stop)
			}
			if tc.stop != "" && !errors.Is(rd.stop, ErrNotPrimary) {
				t.Fatalf("stop %v is not ErrNotPrimary", rd.stop)
			}
			code, _, _ := faultOf(rd.fault)
			if code != tc.fault {
				t.Fatalf("fault %q, want %q", code, tc.fault)
			}
		})
	}
}

// Random runs of requests and log outcomes: after every step the core's
// invariants hold (see coreHost.check), and once the log behaves every
// request has exactly one answer that agrees with the log.
func TestCoreRandomOutcomes(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			h := newCoreHost(t, DefaultConfig(), 2)
			script(t, h, fmt.Sprintf("config view=2 max-batch=%d sign-every=%d sign-interval-ms=%d max-attempts=%d",
				2+rng.IntN(4), 1+rng.IntN(5), 1+rng.IntN(100), 1+rng.IntN(4)))
			submitted := 0
			step := func(final bool) {
				var line string
				switch {
				case h.c.flight == nil && (h.c.redo != nil || len(h.queue) > 0 || rng.IntN(4) == 0):
					line = "plan"
				case h.c.flight == nil:
					line = fmt.Sprintf("submit r%d r%d#%d", submitted, rng.IntN(submitted+1), submitted)
					submitted++
				case h.pending == nil && h.c.redo == nil && !final && rng.IntN(2) == 0:
					line = fmt.Sprintf("submit r%d", submitted)
					submitted++
					script(t, h, line)
					line = "plan"
				case final:
					line = "ack"
				default:
					stored := rng.IntN(len(h.c.flight.entries) + 1)
					line = []string{"ack", "refuse", "indoubt", fmt.Sprintf("indoubt stored=%d", stored),
						"storage-full", "indoubt unreadable", "foreign f" + fmt.Sprint(rng.IntN(3)), "tick ms=20"}[rng.IntN(8)]
					if strings.HasPrefix(line, "foreign") {
						script(t, h, line)
						line = "refuse"
					}
				}
				script(t, h, line)
			}
			for range 60 {
				step(false)
			}
			// The log behaves from now on: everything drains.
			for i := 0; h.c.flight != nil || h.c.redo != nil || len(h.queue) > 0 || h.pending != nil; i++ {
				if i > 1000 {
					t.Fatal("does not drain")
				}
				step(true)
			}
			for q, name := range h.names {
				if _, ok := h.answers[name]; !ok {
					t.Fatalf("%s (%v) never answered", name, q.cmd.Input())
				}
			}
		})
	}
}

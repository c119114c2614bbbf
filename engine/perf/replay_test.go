package perf

import (
	"context"
	"testing"
)

// TestRunReplaySmall runs `gavel bench replay` at toy size: every entry
// is replayed, each phase's rate and CPU are measured, and each check is
// timed on its own. It asserts no speed.
func TestRunReplaySmall(t *testing.T) {
	cfg := DefaultReplayConfig(t.TempDir())
	cfg.Entries, cfg.Clients, cfg.Logger = 300, 16, quietLogger()
	rep, err := RunReplay(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", rep)
	// genesis, the statements and their signatures
	if rep.LedgerEntries < 301 || len(rep.Root) != 64 {
		t.Fatalf("ledger of %d entries, root %q", rep.LedgerEntries, rep.Root)
	}
	if !(rep.RawPerSec > 0) || !(rep.RangePerSec > 0) || !(rep.ReplayPerSec > 0) || rep.Ratio != rep.ReplayPerSec/rep.RawPerSec {
		t.Fatalf("rates %v %v %v, ratio %v", rep.RawPerSec, rep.RangePerSec, rep.ReplayPerSec, rep.Ratio)
	}
	if rep.ReplayCPUPerEntry <= 0 || !(rep.ReplayCores > 0) {
		t.Fatalf("replay CPU %v per entry, %v cores", rep.ReplayCPUPerEntry, rep.ReplayCores)
	}
	c := rep.Checks
	if c.Sample != int(rep.LedgerEntries) || c.Authenticate <= 0 || c.Statement <= 0 || c.Sequential <= 0 || !(c.Bound > 0) {
		t.Fatalf("checks %+v", c)
	}
	// A whole replay does every check and more.
	if c.Sequential < c.Authenticate {
		t.Fatalf("a whole replay (%v per entry) costs less than authenticating alone (%v)", c.Sequential, c.Authenticate)
	}
}

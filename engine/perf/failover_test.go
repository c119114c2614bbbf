package perf

import (
	"context"
	"testing"
	"time"
)

// TestRunFailoverSmall runs `gavel bench failover` at toy size: every gap
// is measured, nothing acknowledged is lost or written twice (a write whose
// answer was lost at the crashed primary is found in the ledger or sent
// again, never both), no read fails, the ratio is computed from the rates.
// It asserts no speed.
func TestRunFailoverSmall(t *testing.T) {
	cfg := DefaultFailoverConfig(t.TempDir())
	cfg.Requests, cfg.Clients, cfg.Stepdowns, cfg.LeaseTTL = 300, 16, 2, 2*time.Second
	cfg.Logger = quietLogger()
	rep, err := RunFailover(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", rep)
	if !(rep.SinglePerSec > 0) || !(rep.ClusterPerSec > 0) || rep.Ratio != rep.ClusterPerSec/rep.SinglePerSec {
		t.Errorf("rates %v, %v and ratio %v", rep.SinglePerSec, rep.ClusterPerSec, rep.Ratio)
	}
	if len(rep.PlannedGaps) != cfg.Stepdowns || rep.CrashGap <= 0 {
		t.Errorf("gaps %v, crash %v", rep.PlannedGaps, rep.CrashGap)
	}
	for _, g := range rep.PlannedGaps {
		if g <= 0 || g > rep.PlannedMax {
			t.Errorf("planned gap %v outside (0, max %v]", g, rep.PlannedMax)
		}
	}
	if rep.Acknowledged == 0 || rep.Lost != 0 || rep.Duplicates != 0 || rep.Errors != 0 {
		t.Errorf("acknowledged %d, lost %d, duplicates %d, errors %d", rep.Acknowledged, rep.Lost, rep.Duplicates, rep.Errors)
	}
	if rep.Reads == 0 || rep.ReadsFailed != 0 {
		t.Errorf("reads %d, failed %d", rep.Reads, rep.ReadsFailed)
	}
}

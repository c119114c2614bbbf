package perf

import (
	"context"
	"testing"
)

// TestRunReplicatedSmall runs `gavel bench replicated` at toy size: every
// run of every round is measured, the ratios come from the medians, the
// CPU of each run is attributed to its instances (the labels reach the
// replicas' and servers' goroutines) and each instance's memory is
// reported. It asserts no speed.
func TestRunReplicatedSmall(t *testing.T) {
	cfg := DefaultReplicatedConfig(t.TempDir())
	cfg.Requests, cfg.Clients, cfg.Rounds = 400, 32, 2
	cfg.Logger = quietLogger()
	rep, err := RunReplicated(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", rep)
	for name, rates := range map[string][]float64{"single": rep.Single, "primary": rep.Primary, "follower": rep.Follower} {
		if len(rates) != cfg.Rounds {
			t.Fatalf("%s: %d rates for %d rounds", name, len(rates), cfg.Rounds)
		}
		for _, r := range rates {
			if !(r > 0) {
				t.Fatalf("%s: rate %v", name, r)
			}
		}
	}
	if rep.PrimaryRatio != rep.PrimaryMedian/rep.SingleMedian || rep.FollowerRatio != rep.FollowerMedian/rep.SingleMedian ||
		rep.SingleMedian != median(rep.Single) || rep.Errors != 0 {
		t.Fatalf("medians and ratios: %+v", rep)
	}
	if len(rep.CPU) != 3 || len(rep.CPU[0].Instances) != 2 || len(rep.CPU[1].Instances) != 4 || len(rep.CPU[2].Instances) != 4 {
		t.Fatalf("CPU %+v", rep.CPU)
	}
	// The replica that runs every write (the single one, the primary) did
	// measurable work in each run: its goroutines carry its label.
	for _, run := range rep.CPU {
		for _, in := range run.Instances {
			if (in.Role == "the only replica" || in.Role == "primary") && (in.Cores <= 0 || in.PerEntry <= 0) {
				t.Errorf("%s: %s (%s) shows no CPU", run.Run, in.Name, in.Role)
			}
		}
	}
	// The runs are measured with the stream leader on the primary's server
	// ("" if raft moved it during the runs, which a loaded machine may do).
	if rep.PrimaryName == "" || rep.LeaderFound == "" || (rep.LedgerLeader != rep.PrimaryName && rep.LedgerLeader != "") {
		t.Fatalf("primary %q, ledger stream leader %q (found on %q)", rep.PrimaryName, rep.LedgerLeader, rep.LeaderFound)
	}
	if len(rep.Memory) != 4 {
		t.Fatalf("memory %+v", rep.Memory)
	}
}

func TestRunReplicatedRefusesBadSizes(t *testing.T) {
	for _, cfg := range []ReplicatedConfig{
		{Dir: t.TempDir(), Requests: 0, Clients: 1, Rounds: 1},
		{Dir: t.TempDir(), Requests: 1, Clients: 0, Rounds: 1},
		{Dir: t.TempDir(), Requests: 1, Clients: 1, Rounds: 0},
	} {
		if _, err := RunReplicated(context.Background(), cfg); err == nil {
			t.Fatalf("%+v accepted", cfg)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// liveUpgradeReport is what gavel demo live-upgrade --json prints (the
// fields this test reads).
type liveUpgradeReport struct {
	Replicas []struct {
		Name        string `json:"name"`
		CodeVersion string `json:"code_version"`
		Final       string `json:"final"`
	} `json:"replicas"`
	WritesAcknowledged int      `json:"writes_acknowledged"`
	WritesRefused      int      `json:"writes_refused"`
	WriteErrors        []string `json:"write_errors"`
	WritesLost         int      `json:"writes_lost"`
	Duplicates         int      `json:"duplicates"`
	Reads              int64    `json:"reads"`
	ReadsFailed        int64    `json:"reads_failed"`
	ReadErrors         []string `json:"read_errors"`
	PrimaryChanges     []struct {
		From              string  `json:"from"`
		To                string  `json:"to"`
		LongestWriteGapMs float64 `json:"longest_write_gap_ms"`
	} `json:"primary_changes"`
	Steps []struct {
		Retired           string  `json:"retired"`
		WasPrimary        bool    `json:"was_primary"`
		PrimaryAfter      string  `json:"primary_after"`
		LongestWriteGapMs float64 `json:"longest_write_gap_ms"`
	} `json:"steps"`
	FinalPrimary     string              `json:"final_primary"`
	FinalPrimaryCode string              `json:"final_primary_code_version"`
	StreamPeers      map[string][]string `json:"stream_peers"`
	StreamPeersAllB  bool                `json:"stream_peers_all_b"`
	RemovedNodes     []string            `json:"removed_nodes"`
	ReplayRoots      map[string]string   `json:"replay_roots"`
	RootsEqual       bool                `json:"roots_equal"`
}

// plannedGapTarget is issue 11's bound on the write gap of a planned
// primary change, in ms. It is a figure of the machine's load as much as
// of gavel: the default tier prints it and the integration tier (a quiet
// machine, task test:integration) asserts it (assertGapTarget).
const plannedGapTarget = 300

// TestLiveUpgrade runs the live code upgrade of gavel itself (issue 11
// item 7) with real processes: gavel demo live-upgrade starts three
// replicas on code A (serve --cluster, then two serve --join, each
// trusted before the next), a client writing and reading over all of
// them, members trust B, three B replicas join, the A replicas are
// retired one by one (the primary last), become removable and are
// deleted. The report must say: no acknowledged write lost (every
// receipt verifies on every remaining replica), no duplicate, no failed
// read, primary-ship on a B replica with each planned change's write gap
// within 300 ms, the streams on B servers only, and the same replay root
// through every B replica's server.
func TestLiveUpgrade(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gavelBinary(t), "demo", "live-upgrade", "--dir", dir, "--json")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	t.Logf("narration:\n%s", errOut.String()) // the replicas' log tails follow a failure of the demo
	t.Cleanup(func() {
		if t.Failed() && err == nil {
			showReplicaLogs(t, dir)
		}
	})
	if err != nil {
		t.Fatalf("gavel demo live-upgrade: %v\n%s", err, out.String())
	}
	var r liveUpgradeReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("the report: %v\n%s", err, out.String())
	}
	t.Logf("report: %s", out.String())

	if r.WritesAcknowledged < 100 || r.Reads < 100 {
		t.Errorf("too little load to judge: %d writes acknowledged, %d reads", r.WritesAcknowledged, r.Reads)
	}
	if r.WritesLost != 0 || r.Duplicates != 0 || r.ReadsFailed != 0 || r.WritesRefused != 0 {
		t.Errorf("writes lost %d, duplicates %d, refused %d (%v), reads failed %d (%v)",
			r.WritesLost, r.Duplicates, r.WritesRefused, r.WriteErrors, r.ReadsFailed, r.ReadErrors)
	}
	if len(r.Steps) != 3 || !r.Steps[2].WasPrimary {
		t.Errorf("the retirements: %+v (three, the primary last)", r.Steps)
	}
	if r.FinalPrimaryCode != "B" {
		t.Errorf("primary-ship ends on %s (code %s)", r.FinalPrimary, r.FinalPrimaryCode)
	}
	if len(r.PrimaryChanges) == 0 {
		t.Error("the client saw no primary change")
	}
	for _, c := range r.PrimaryChanges {
		t.Logf("primary %s → %s: longest write gap %.0f ms (target ≤ %d ms)", c.From, c.To, c.LongestWriteGapMs, plannedGapTarget)
		if assertGapTarget && c.LongestWriteGapMs > plannedGapTarget {
			t.Errorf("primary %s → %s: longest write gap %.0f ms, target ≤ %d ms", c.From, c.To, c.LongestWriteGapMs, plannedGapTarget)
		}
	}
	if len(r.RemovedNodes) != 3 {
		t.Errorf("%d nodes deleted, want the three A nodes", len(r.RemovedNodes))
	}
	if !r.StreamPeersAllB || len(r.StreamPeers) == 0 {
		t.Errorf("stream peers %v: not all B servers", r.StreamPeers)
	}
	serving := 0
	for _, x := range r.Replicas {
		if wantB := x.Final != "deleted"; wantB != (x.CodeVersion == "B") {
			t.Errorf("replica %s (code %s) ends %s", x.Name, x.CodeVersion, x.Final)
		}
		if x.Final != "deleted" {
			serving++
		}
	}
	if serving != 3 || len(r.ReplayRoots) != 3 || !r.RootsEqual {
		t.Errorf("%d replicas serve; replay roots %v (equal: %v)", serving, r.ReplayRoots, r.RootsEqual)
	}
}

// showReplicaLogs logs the last lines of every replica's log in dir.
func showReplicaLogs(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, p := range logs {
		b, _ := os.ReadFile(p)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		t.Logf("--- %s, last lines:\n%s", filepath.Base(p), strings.Join(lines[max(len(lines)-30, 0):], "\n"))
	}
}

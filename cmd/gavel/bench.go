package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/perf"
)

func init() {
	register("bench commit", "measure durable registration against raw JetStream baselines", runBenchCommit)
}

func runBenchCommit(args []string, out, errOut io.Writer) int {
	fs := newFlags("bench commit", errOut)
	dir, err := os.MkdirTemp("", "gavel-bench-")
	if err != nil {
		return failf(errOut, "%v", err)
	}
	defer os.RemoveAll(dir)
	cfg := perf.DefaultConfig(dir)
	fs.IntVar(&cfg.Requests, "n", cfg.Requests, "registrations in the peak run")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent requesters in the peak run")
	fs.IntVar(&cfg.RawOne, "raw-one", cfg.RawOne, "messages in the one-at-a-time baseline")
	fs.DurationVar(&cfg.HalfLoad, "half-load", cfg.HalfLoad, "duration of the run at half of peak")
	fs.IntVar(&cfg.PayloadBytes, "payload-bytes", cfg.PayloadBytes, "statement payload size")
	fs.DurationVar(&cfg.Sequencer.Linger, "linger", cfg.Sequencer.Linger, "sequencer linger")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	peer := fs.Bool("peer", false, "also run tessera in the same process and print gavel / tessera (builds bench/ from a gavel checkout)")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 || cfg.Requests <= 0 || cfg.Clients <= 0 || cfg.RawOne <= 0 {
		return usageError(errOut, fs, "flags must be positive and no arguments are taken")
	}
	if *peer {
		if *cpuProfile != "" {
			return usageError(errOut, fs, "--cpuprofile is not available with --peer")
		}
		return runPeerBench(args, out, errOut)
	}
	fmt.Fprintf(errOut, "bench commit: %d registrations, %d clients, SyncAlways store in %s\n", cfg.Requests, cfg.Clients, dir)
	if stop, err := startProfile(*cpuProfile); err != nil {
		return failf(errOut, "%v", err)
	} else {
		defer stop()
	}
	rep, err := perf.RunCommit(perf.WithProgress(context.Background(), benchProgress(errOut, jsonFlagSet(fs))), cfg)
	if err != nil {
		return failf(errOut, "bench: %v", err)
	}
	if *asJSON {
		return printJSON(out, rep)
	}
	rep.WriteText(out)
	return exitOK
}

func init() {
	register("bench gov", "measure signed ballots committed per second against the ES256 verify ceiling", runBenchGov)
}

func runBenchGov(args []string, out, errOut io.Writer) int {
	fs := newFlags("bench gov", errOut)
	dir, err := os.MkdirTemp("", "gavel-bench-gov-")
	if err != nil {
		return failf(errOut, "%v", err)
	}
	defer os.RemoveAll(dir)
	cfg := perf.DefaultGovConfig(dir)
	fs.IntVar(&cfg.Proposals, "proposals", cfg.Proposals, "proposals; each gets two ballots")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent requesters")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	ballotProfile := fs.String("ballots-cpuprofile", "", "write a CPU profile of the ballots alone to this file")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if *ballotProfile != "" {
		if *cpuProfile != "" {
			return usageError(errOut, fs, "--cpuprofile and --ballots-cpuprofile cannot both be given")
		}
		cfg.Ballots = func() func() {
			stop, err := startProfile(*ballotProfile)
			if err != nil {
				fmt.Fprintf(errOut, "bench: %v\n", err)
				return func() {}
			}
			return stop
		}
	}
	if len(pos) != 0 || cfg.Proposals <= 0 || cfg.Clients <= 0 {
		return usageError(errOut, fs, "flags must be positive and no arguments are taken")
	}
	if stop, err := startProfile(*cpuProfile); err != nil {
		return failf(errOut, "%v", err)
	} else {
		defer stop()
	}
	prepared0, reused0 := constitution.PreparedCalls(), gov.BallotOutcomesReused()
	decoded0, policies0 := gov.DecodedRecordsReused(), constitution.JoinPoliciesReused()
	rep, err := perf.RunGov(perf.WithProgress(context.Background(), benchProgress(errOut, jsonFlagSet(fs))), cfg)
	if err != nil {
		return failf(errOut, "bench: %v", err)
	}
	if *asJSON {
		return printJSON(out, rep)
	}
	defer fmt.Fprintf(out, "script calls on instances prepared ahead %d; ballot outcomes reused %d; proposal records not decoded %d; "+
		"join policies compiled ahead %d; ballots' state reads from the read cache %d\n",
		constitution.PreparedCalls()-prepared0, gov.BallotOutcomesReused()-reused0, gov.DecodedRecordsReused()-decoded0,
		constitution.JoinPoliciesReused()-policies0, rep.ReadCacheHits)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
	fmt.Fprintf(out, "members %d, proposals %d (accepted %d)\n", rep.Members, cfg.Proposals, rep.Accepted)
	fmt.Fprintf(out, "proposals committed              %9.0f /s\n", rep.ProposalsPerSec)
	fmt.Fprintf(out, "ballots committed                %9.0f /s  p50 %s  p99 %s\n", rep.BallotsPerSec, ms(rep.BallotLatency.P50), ms(rep.BallotLatency.P99))
	fmt.Fprintf(out, "ballots per round %.1f; sequencer busy: execute %.0f%%, append %.0f%%, apply %.0f%%\n",
		rep.BatchSize, 100*rep.SequencerBusy.Execute, 100*rep.SequencerBusy.Append, 100*rep.SequencerBusy.Apply)
	fmt.Fprintf(out, "ES256 verify ceiling, all cores  %9.0f /s  (before the ballots %.0f, after %.0f)\n", rep.VerifyCeiling, rep.VerifyBefore, rep.VerifyAfter)
	fmt.Fprintf(out, "ballots / ceiling = %.0f%% (target ≥ 60%%)\n", 100*rep.VsVerifyCeiling)
	return exitOK
}

// startProfile starts a CPU profile into path ("" does nothing).
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func init() {
	register("bench scale", "measure cost per entry from the first window to the last (default a million entries)", runBenchScale)
}

func runBenchScale(args []string, out, errOut io.Writer) int {
	fs := newFlags("bench scale", errOut)
	dir, err := os.MkdirTemp("", "gavel-bench-scale-")
	if err != nil {
		return failf(errOut, "%v", err)
	}
	defer os.RemoveAll(dir)
	cfg := perf.DefaultScaleConfig(dir)
	fs.IntVar(&cfg.Entries, "entries", cfg.Entries, "statements registered in all")
	fs.IntVar(&cfg.Window, "window", cfg.Window, "statements per measured window")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent requesters")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 || cfg.Entries <= 0 || cfg.Window <= 0 || cfg.Window > cfg.Entries || cfg.Clients <= 0 {
		return usageError(errOut, fs, "flags must be positive, --window at most --entries, and no arguments are taken")
	}
	progress := newProgressMode(errOut, "bench scale", "statements", uint64(cfg.Entries), jsonFlagSet(fs))
	cfg.Progress = func(w perf.ScaleWindow) { progress.set(uint64((w.Index + 1) * cfg.Window)) }
	rep, err := perf.RunScale(context.Background(), cfg)
	progress.done()
	if err != nil {
		return failf(errOut, "bench: %v", err)
	}
	if *asJSON {
		return printJSON(out, rep)
	}
	fmt.Fprintf(out, "%d entries in %s: last window / first window = %.2f× throughput, %.2f× p99\n",
		rep.Entries, rep.Elapsed.Round(time.Second), rep.LastVsFirst, rep.P99LastVsFirst)
	fmt.Fprintf(out, "tree size %d, pebble %d MB, JetStream %d MB, errors %d\n", rep.TreeSize, rep.StateBytes>>20, rep.LogBytes>>20, rep.Errors)
	fmt.Fprintf(out, "memory: Go heap in use %d MB after GC, peak RSS %d MB (replica, NATS server and clients in one process)\n", rep.HeapBytes>>20, rep.MaxRSSBytes>>20)
	fmt.Fprintf(out, "the replica released on stop: Go heap %d MB, RSS %d MB; heap growth first → last window %.1f bytes/entry\n",
		rep.ReplicaHeapBytes>>20, rep.ReplicaRSSBytes>>20, rep.HeapPerEntry)
	fmt.Fprintf(out, "per window (entries/s, p99, Go heap, RSS):")
	for _, w := range rep.Windows {
		fmt.Fprintf(out, " [%d: %.0f/s %.0f ms %d MB %d MB]", w.LedgerSeqno, w.PerSec, float64(w.Latency.P99.Microseconds())/1000, w.HeapBytes>>20, w.RSSBytes>>20)
	}
	fmt.Fprintln(out)
	return exitOK
}

// runPeerBench runs the commit benchmark with tessera beside gavel. The
// peer lives in bench/, a Go module of its own so that gavel does not
// depend on it; it is built from the checkout this command runs in and
// runs gavel and tessera in one process. -mod=mod lets it follow changes
// of gavel's own dependencies without a tidy of bench/go.mod first.
func runPeerBench(args []string, out, errOut io.Writer) int {
	dir, err := findBenchModule()
	if err != nil {
		return failf(errOut, "%v", err)
	}
	var rest []string
	for _, a := range args {
		if a != "--peer" && a != "-peer" && a != "--peer=true" && a != "-peer=true" {
			rest = append(rest, a)
		}
	}
	// Both sides are compiled from that checkout: say so, since a binary
	// built from other code measures the checkout's gavel here, not its own.
	fmt.Fprintf(out, "bench commit --peer: gavel and tessera built together from the checkout at %s\n", filepath.Dir(dir))
	cmd := exec.Command("go", append([]string{"run", "-mod=mod", ".", "commit"}, rest...)...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, out, errOut
	if err := cmd.Run(); err != nil {
		return failf(errOut, "bench commit --peer: %v", err)
	}
	return exitOK
}

// findBenchModule finds bench/go.mod in the working directory or above.
func findBenchModule() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "bench", "go.mod")); err == nil {
			return filepath.Join(d, "bench"), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("--peer builds the peer from bench/ in a gavel checkout; none found at or above %s", wd)
		}
	}
}

func init() {
	register("bench replay", "measure the auditor's replay against a raw ordered-consumer read of the same ledger", runBenchReplay)
}

func runBenchReplay(args []string, out, errOut io.Writer) int {
	fs := newFlags("bench replay", errOut)
	dir, err := os.MkdirTemp("", "gavel-bench-replay-")
	if err != nil {
		return failf(errOut, "%v", err)
	}
	defer os.RemoveAll(dir)
	cfg := perf.DefaultReplayConfig(dir)
	fs.IntVar(&cfg.Entries, "entries", cfg.Entries, "statements registered before the replay")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent requesters while registering")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 || cfg.Entries <= 0 || cfg.Clients <= 0 {
		return usageError(errOut, fs, "flags must be positive and no arguments are taken")
	}
	fmt.Fprintf(errOut, "bench replay: registering %d statements, then reading the ledger twice\n", cfg.Entries)
	rep, err := perf.RunReplay(perf.WithProgress(context.Background(), benchProgress(errOut, jsonFlagSet(fs))), cfg)
	if err != nil {
		return failf(errOut, "bench: %v", err)
	}
	if *asJSON {
		return printJSON(out, rep)
	}
	us := func(d time.Duration) string { return fmt.Sprintf("%6.1f µs", float64(d.Nanoseconds())/1000) }
	fmt.Fprintf(out, "ledger entries                     %d\n", rep.LedgerEntries)
	fmt.Fprintf(out, "(r) raw ordered-consumer read      %9.0f entries/s  CPU %s/entry\n", rep.RawPerSec, us(rep.RawCPUPerEntry))
	fmt.Fprintf(out, "    the replay's read (direct gets) %8.0f entries/s  CPU %s/entry\n", rep.RangePerSec, us(rep.RangeCPUPerEntry))
	fmt.Fprintf(out, "(a) gavel audit replay             %9.0f entries/s  CPU %s/entry, %.2f cores busy\n", rep.ReplayPerSec, us(rep.ReplayCPUPerEntry), rep.ReplayCores)
	c := rep.Checks
	fmt.Fprintf(out, "one core, first %d entries: authenticate (Ed25519) %s, decode %s, statement (ES256, did:x509) %s; whole replay %s/entry\n",
		c.Sample, us(c.Authenticate), us(c.Decode), us(c.Statement), us(c.Sequential))
	fmt.Fprintf(out, "bound of these checks on every core %9.0f entries/s = %.0f%% of (r)\n", c.Bound, 100*c.Bound/rep.RawPerSec)
	fmt.Fprintf(out, "(a)/(r) = %.0f%% (target ≥ 50%%)  root %s\n", 100*rep.Ratio, rep.Root)
	return exitOK
}

func init() {
	register("bench failover", "measure planned and crash primary changes and 3-replica against 1-replica throughput", runBenchFailover)
}

func runBenchFailover(args []string, out, errOut io.Writer) int {
	fs := newFlags("bench failover", errOut)
	dir, err := os.MkdirTemp("", "gavel-bench-failover-")
	if err != nil {
		return failf(errOut, "%v", err)
	}
	defer os.RemoveAll(dir)
	cfg := perf.DefaultFailoverConfig(dir)
	fs.IntVar(&cfg.Requests, "n", cfg.Requests, "registrations in each throughput run")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent requesters in the throughput runs")
	fs.IntVar(&cfg.Stepdowns, "stepdowns", cfg.Stepdowns, "planned primary changes")
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", cfg.LeaseTTL, "the lease bucket's TTL")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 || cfg.Requests <= 0 || cfg.Clients <= 0 || cfg.Stepdowns < 0 || cfg.LeaseTTL <= 0 {
		return usageError(errOut, fs, "flags must be positive and no arguments are taken")
	}
	fmt.Fprintf(errOut, "bench failover: 3 embedded JetStream servers on loopback, SyncAlways, in %s\n", dir)
	rep, err := perf.RunFailover(perf.WithProgress(context.Background(), benchProgress(errOut, jsonFlagSet(fs))), cfg)
	if err != nil {
		return failf(errOut, "bench: %v", err)
	}
	if *asJSON {
		return printJSON(out, rep)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }
	fmt.Fprintf(out, "1 replica                 %8.0f registrations/s\n", rep.SinglePerSec)
	fmt.Fprintf(out, "3 replicas (R3)           %8.0f registrations/s   ratio %.2f (target ≥ 0.50)\n", rep.ClusterPerSec, rep.Ratio)
	for i, g := range rep.PlannedGaps {
		fmt.Fprintf(out, "planned stepdown %d        write gap %s\n", i+1, ms(g))
	}
	fmt.Fprintf(out, "planned, longest          %s (target ≤ 300 ms)\n", ms(rep.PlannedMax))
	fmt.Fprintf(out, "crash of the primary      write gap %s (target ≤ 7 s; lease TTL %s)\n", ms(rep.CrashGap), cfg.LeaseTTL)
	fmt.Fprintf(out, "writes acknowledged %d, lost %d, duplicates %d, errors %d\n", rep.Acknowledged, rep.Lost, rep.Duplicates, rep.Errors)
	fmt.Fprintf(out, "answers lost %d: found in the ledger %d, sent again %d\n", rep.Resolved+rep.Retries, rep.Resolved, rep.Retries)
	fmt.Fprintf(out, "reads through a follower %d, failed %d (target 0)\n", rep.Reads, rep.ReadsFailed)
	return exitOK
}

func init() {
	register("bench replicated", "measure durable registration on three replicas (R3) against one, in alternating runs", runBenchReplicated)
}

func runBenchReplicated(args []string, out, errOut io.Writer) int {
	fs := newFlags("bench replicated", errOut)
	dir, err := os.MkdirTemp("", "gavel-bench-replicated-")
	if err != nil {
		return failf(errOut, "%v", err)
	}
	defer os.RemoveAll(dir)
	cfg := perf.DefaultReplicatedConfig(dir)
	fs.IntVar(&cfg.Requests, "n", cfg.Requests, "registrations in each measured run")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent requesters")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "alternations of the single, via-primary and via-follower runs")
	fs.StringVar(&cfg.ProfileDir, "profile-dir", "", "write each run's CPU profile (samples labelled gavel-instance=single|r0|r1|r2) into this folder")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 || cfg.Requests <= 0 || cfg.Clients <= 0 || cfg.Rounds <= 0 {
		return usageError(errOut, fs, "flags must be positive and no arguments are taken")
	}
	fmt.Fprintf(errOut, "bench replicated: 1 replica and 3 (3 embedded JetStream servers on loopback, R3, SyncAlways) in %s\n", dir)
	rep, err := perf.RunReplicated(perf.WithProgress(context.Background(), benchProgress(errOut, jsonFlagSet(fs))), cfg)
	if err != nil {
		return failf(errOut, "bench: %v", err)
	}
	if *asJSON {
		return printJSON(out, rep)
	}
	rates := func(xs []float64) string {
		s := ""
		for _, x := range xs {
			s += fmt.Sprintf(" %.0f", x)
		}
		return s
	}
	ms := func(l perf.Latency) string {
		return fmt.Sprintf("p50 %.1f ms, p99 %.1f ms", float64(l.P50.Microseconds())/1000, float64(l.P99.Microseconds())/1000)
	}
	fmt.Fprintf(out, "%d registrations per run, %d clients, %d rounds (median; each round's figure)\n", rep.Requests, rep.Clients, rep.Rounds)
	fmt.Fprintf(out, "(1) one replica               %8.0f registrations/s  %s  (%s)\n", rep.SingleMedian, ms(rep.SingleLatency), rates(rep.Single)[1:])
	fmt.Fprintf(out, "(p) 3 replicas, via primary   %8.0f registrations/s  %s  (%s)\n", rep.PrimaryMedian, ms(rep.PrimaryLatency), rates(rep.Primary)[1:])
	fmt.Fprintf(out, "(f) 3 replicas, via follower  %8.0f registrations/s  %s  (%s)\n", rep.FollowerMedian, ms(rep.FollowerLatency), rates(rep.Follower)[1:])
	fmt.Fprintf(out, "(p)/(1) = %.0f%%   (f)/(1) = %.0f%%   (target ≥ 50%%)   errors %d\n", 100*rep.PrimaryRatio, 100*rep.FollowerRatio, rep.Errors)
	leader := rep.LedgerLeader
	if leader == "" {
		leader = "moved during the runs"
	}
	primary := rep.PrimaryName
	if !rep.PrimaryKept {
		primary += " (it lost the lease during the runs: the figures mix roles)"
	}
	fmt.Fprintf(out, "primary %s; ledger stream leader after the warm-up %s, during the runs %s\n", primary, rep.LeaderFound, leader)
	for _, r := range rep.CPU {
		fmt.Fprintf(out, "CPU, %s:\n", r.Run)
		for _, in := range r.Instances {
			name := in.Name
			if name == "" {
				name = "-"
			}
			fmt.Fprintf(out, "    %-6s %-28s %5.2f cores  %6.1f µs/registration\n", name, in.Role, in.Cores, float64(in.PerEntry.Nanoseconds())/1000)
		}
	}
	fmt.Fprintf(out, "memory at the end: the process (4 instances, clients) Go heap %d MB, RSS %d MB; released on closing each:\n", rep.ProcessHeapBytes>>20, rep.ProcessRSSBytes>>20)
	for _, m := range rep.Memory {
		fmt.Fprintf(out, "    %-6s %-28s Go heap %4d MB  RSS %4d MB\n", m.Name, m.Role, m.HeapBytes>>20, m.RSSBytes>>20)
	}
	return exitOK
}

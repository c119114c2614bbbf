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
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
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
	rep, err := perf.RunGov(perf.WithProgress(context.Background(), benchProgress(errOut, jsonFlagSet(fs))), cfg)
	if err != nil {
		return failf(errOut, "bench: %v", err)
	}
	if *asJSON {
		return printJSON(out, rep)
	}
	defer fmt.Fprintf(out, "script calls on instances prepared ahead %d; ballot outcomes reused %d\n",
		constitution.PreparedCalls()-prepared0, gov.BallotOutcomesReused()-reused0)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
	fmt.Fprintf(out, "members %d, proposals %d (accepted %d)\n", rep.Members, cfg.Proposals, rep.Accepted)
	fmt.Fprintf(out, "proposals committed              %9.0f /s\n", rep.ProposalsPerSec)
	fmt.Fprintf(out, "ballots committed                %9.0f /s  p50 %s  p99 %s\n", rep.BallotsPerSec, ms(rep.BallotLatency.P50), ms(rep.BallotLatency.P99))
	fmt.Fprintf(out, "ballots per round %.1f; sequencer busy: execute %.0f%%, append %.0f%%, apply %.0f%%\n",
		rep.BatchSize, 100*rep.SequencerBusy.Execute, 100*rep.SequencerBusy.Append, 100*rep.SequencerBusy.Apply)
	fmt.Fprintf(out, "ES256 verify ceiling, all cores  %9.0f /s\n", rep.VerifyCeiling)
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
	fmt.Fprintf(out, "ledger entries                     %d\n", rep.LedgerEntries)
	fmt.Fprintf(out, "(r) raw ordered-consumer read      %9.0f entries/s\n", rep.RawPerSec)
	fmt.Fprintf(out, "(a) gavel audit replay             %9.0f entries/s  root %s\n", rep.ReplayPerSec, rep.Root)
	fmt.Fprintf(out, "(a)/(r) = %.0f%% (target ≥ 50%%)\n", 100*rep.Ratio)
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

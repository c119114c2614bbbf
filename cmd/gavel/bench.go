package main

import (
	"context"
	"fmt"
	"io"
	"os"
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
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 || cfg.Requests <= 0 || cfg.Clients <= 0 || cfg.RawOne <= 0 {
		return usageError(errOut, fs, "flags must be positive and no arguments are taken")
	}
	fmt.Fprintf(errOut, "bench commit: %d registrations, %d clients, SyncAlways store in %s\n", cfg.Requests, cfg.Clients, dir)
	if stop, err := startProfile(*cpuProfile); err != nil {
		return failf(errOut, "%v", err)
	} else {
		defer stop()
	}
	rep, err := perf.RunCommit(context.Background(), cfg)
	if err != nil {
		return failf(errOut, "bench: %v", err)
	}
	if *asJSON {
		return printJSON(out, rep)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
	fmt.Fprintf(out, "entry size                         %d bytes\n", rep.EntryBytes)
	fmt.Fprintf(out, "(a) raw JetStream publish, one     %9.0f msg/s\n", rep.RawOnePerSec)
	fmt.Fprintf(out, "(b) raw atomic batch of %-4d       %9.0f msg/s\n", rep.BatchSize, rep.RawBatchPerSec)
	fmt.Fprintf(out, "    raw atomic batch of 100        %9.0f msg/s\n", rep.RawBatch100)
	fmt.Fprintf(out, "(c) gavel registration, peak       %9.0f entries/s  p50 %s  p99 %s\n", rep.GavelPerSec, ms(rep.PeakLatency.P50), ms(rep.PeakLatency.P99))
	fmt.Fprintf(out, "    at half of peak (%.0f/s)     latency p50 %s  p99 %s\n", rep.HalfLoadPerSec, ms(rep.HalfLoadLatency.P50), ms(rep.HalfLoadLatency.P99))
	fmt.Fprintf(out, "(c)/(a) = %.1f× (target ≥ 10×)   (c)/(b) = %.0f%% (target ≥ 50%%)   errors %d\n", rep.VsRawOne, 100*rep.VsRawBatch, rep.Errors)
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
	rep, err := perf.RunGov(context.Background(), cfg)
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
	cfg.Progress = func(w perf.ScaleWindow) {
		fmt.Fprintf(errOut, "window %3d  seqno %9d  %8.0f entries/s  p99 %7.2f ms\n", w.Index, w.LedgerSeqno, w.PerSec, float64(w.Latency.P99.Microseconds())/1000)
	}
	rep, err := perf.RunScale(context.Background(), cfg)
	if err != nil {
		return failf(errOut, "bench: %v", err)
	}
	if *asJSON {
		return printJSON(out, rep)
	}
	fmt.Fprintf(out, "%d entries in %s: last window / first window = %.2f× throughput, %.2f× p99\n",
		rep.Entries, rep.Elapsed.Round(time.Second), rep.LastVsFirst, rep.P99LastVsFirst)
	fmt.Fprintf(out, "tree size %d, pebble %d MB, JetStream %d MB, errors %d\n", rep.TreeSize, rep.StateBytes>>20, rep.LogBytes>>20, rep.Errors)
	return exitOK
}

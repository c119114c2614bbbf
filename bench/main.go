// Command peer runs `gavel bench commit` with a peer log measured in the
// same process, on the same machine, with the same statements and clients,
// and prints gavel / peer. It is a separate Go module so that gavel itself
// does not depend on the peer: run it as `go run ./bench commit` from a
// gavel checkout, or through `gavel bench commit --peer`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/gavelhq/gavel/bench/tessera"
	"github.com/gavelhq/gavel/engine/perf"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "commit" {
		fmt.Fprintln(os.Stderr, "usage: peer commit [flags]   (gavel bench commit against tessera in one process)")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("peer commit", flag.ContinueOnError)
	dir, err := os.MkdirTemp("", "gavel-bench-peer-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	cfg := perf.DefaultConfig(dir)
	fs.IntVar(&cfg.Requests, "n", cfg.Requests, "entries in each peak run")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent requesters in each peak run")
	fs.IntVar(&cfg.RawOne, "raw-one", cfg.RawOne, "messages in the one-at-a-time baseline")
	fs.DurationVar(&cfg.HalfLoad, "half-load", cfg.HalfLoad, "duration of each run at half of peak")
	fs.IntVar(&cfg.PayloadBytes, "payload-bytes", cfg.PayloadBytes, "statement payload size")
	fs.DurationVar(&cfg.Sequencer.Linger, "linger", cfg.Sequencer.Linger, "sequencer linger")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() != 0 || cfg.Requests <= 0 || cfg.Clients <= 0 || cfg.RawOne <= 0 {
		fmt.Fprintln(os.Stderr, "flags must be positive and no arguments are taken")
		os.Exit(2)
	}
	cfg.Peer = tessera.Peer{}
	fmt.Fprintf(os.Stderr, "bench commit --peer: %d entries each, %d clients, scratch in %s\n", cfg.Requests, cfg.Clients, dir)
	start := time.Now()
	rep, err := perf.RunCommit(context.Background(), cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return
	}
	rep.WriteText(os.Stdout)
	fmt.Fprintf(os.Stderr, "done in %s\n", time.Since(start).Round(time.Second))
}

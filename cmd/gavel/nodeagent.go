package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/netmap/agent"
	"github.com/gavelhq/gavel/nodeagent/mapagent"
)

func init() {
	register("node run", "run a node's network-map agent: gavel node run --base DIR --url U", runNodeRun)
	register("node updates", "print the parameter updates a node agent saw, as JSON lines: gavel node updates --base DIR [--follow]", runNodeUpdates)
	register("node accept", "accept a pending parameters update: gavel node accept --base DIR HASH", runNodeAccept)
}

func runNodeRun(args []string, out, errOut io.Writer) int {
	fs := newFlags("node run", errOut)
	base := fs.String("base", "", "the node's folder (gavel bootstrap's nodes/<name>) (required)")
	url := fs.String("url", "", "the service's HTTP URL (required)")
	natsURL := fs.String("nats", "", "the service's NATS URL, to follow gavel.feed.map (optional)")
	creds := fs.String("creds", "", "NATS credentials (nkey seed file) for --nats")
	heartbeat := fs.Duration("heartbeat", 24*time.Hour, "republish the NodeInfo this often")
	maxPoll := fs.Duration("max-poll", 0, "longest wait between map polls (0: the map's max-age)")
	noAuto := fs.Bool("no-auto-accept", false, "never accept an update without gavel node accept")
	var exclude stringList
	fs.Var(&exclude, "exclude-auto-accept", "an auto-acceptable field that needs gavel node accept (repeatable)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 || *base == "" || *url == "" {
		return usageError(errOut, fs, "--base DIR and --url U are required, and no arguments are taken")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(errOut, "gavel node run: --log-level %q: %v\n", *logLevel, err)
		return exitUsage
	}
	pol := agent.Policy{Disabled: *noAuto, Excluded: exclude}
	if err := pol.Validate(); err != nil {
		fmt.Fprintf(errOut, "gavel node run: --exclude-auto-accept: %s\n", engine.AsError(err).Message)
		return exitUsage
	}
	cfg := mapagent.Config{Base: *base, URL: *url, NATSURL: *natsURL, Heartbeat: *heartbeat, MaxPoll: *maxPoll, Policy: pol,
		Logger: slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: level}))}
	if *creds != "" {
		opt, err := nats.NkeyOptionFromSeed(*creds)
		if err != nil {
			fmt.Fprintf(errOut, "gavel node run: --creds: %v\n", err)
			return exitFailed
		}
		cfg.NATSOpts = append(cfg.NATSOpts, opt)
	}
	a, err := mapagent.Load(cfg)
	if err != nil {
		fmt.Fprintf(errOut, "gavel node run: %v\n", err)
		return exitFailed
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	exit := a.Run(ctx)
	if exit.Message != "" {
		fmt.Fprintf(errOut, "gavel node run: %s\n", exit.Message)
	}
	return exit.Code
}

func runNodeUpdates(args []string, out, errOut io.Writer) int {
	fs := newFlags("node updates", errOut)
	base := fs.String("base", "", "the node's folder (required)")
	follow := fs.Bool("follow", false, "keep printing updates as the agent records them")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 || *base == "" {
		return usageError(errOut, fs, "--base DIR is required, and no arguments are taken")
	}
	if !*follow {
		us, err := mapagent.Updates(*base)
		if err != nil {
			fmt.Fprintf(errOut, "gavel node updates: %v\n", err)
			return exitFailed
		}
		enc := json.NewEncoder(out)
		for _, u := range us {
			enc.Encode(u)
		}
		return exitOK
	}
	// Follow: every line the agent appends, as it appends it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var offset int64
	for {
		if b, err := os.ReadFile(filepath.Join(*base, mapagent.UpdatesFile)); err == nil && int64(len(b)) > offset {
			chunk := string(b[offset:])
			if i := strings.LastIndexByte(chunk, '\n'); i >= 0 {
				fmt.Fprint(out, chunk[:i+1])
				offset += int64(i + 1)
			}
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func runNodeAccept(args []string, out, errOut io.Writer) int {
	fs := newFlags("node accept", errOut)
	base := fs.String("base", "", "the node's folder (required)")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 || *base == "" {
		return usageError(errOut, fs, "--base DIR and one HASH are required")
	}
	hash := pos[0]
	if err := mapagent.AcceptLocal(context.Background(), *base, hash); err != nil {
		fmt.Fprintf(errOut, "gavel node accept: %s\n", engine.AsError(err).Message)
		return exitFailed
	}
	fmt.Fprintf(out, "accepted %s\n", hash)
	return exitOK
}

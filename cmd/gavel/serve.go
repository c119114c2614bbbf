package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/handlers"
)

func init() {
	register("serve", "run a replica: embedded NATS + JetStream, HTTP and NATS endpoints", runServe)
}

// serveFlags are the settings of gavel serve.
type serveFlags struct {
	data, natsListen, httpListen, logLevel string
	seq                                    sequencer.Config
	limits                                 handlers.Limits
	memberCerts                            stringList
	constitutionDir                        string
	scripts                                constitution.Limits
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func (f *serveFlags) register(fs *flag.FlagSet) {
	f.seq = sequencer.DefaultConfig()
	f.limits = handlers.DefaultLimits()
	fs.StringVar(&f.data, "data", "./gavel-data", "data folder (identity, NATS store, state)")
	fs.StringVar(&f.natsListen, "nats-listen", "127.0.0.1:4222", "embedded NATS client listener (host:port, port 0 picks one)")
	fs.StringVar(&f.httpListen, "http", "127.0.0.1:8080", "HTTP listener (host:port, port 0 picks one)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.IntVar(&f.seq.SignEvery, "sign-every", f.seq.SignEvery, "a signature entry at least every N entries")
	fs.DurationVar(&f.seq.SignInterval, "sign-interval", f.seq.SignInterval, "a signature entry at most this long after an unsigned entry")
	fs.IntVar(&f.seq.MaxBatch, "max-batch", f.seq.MaxBatch, "entries per atomic batch (≤ 1000)")
	fs.DurationVar(&f.seq.Linger, "linger", f.seq.Linger, "how long a round waits for more requests")
	fs.IntVar(&f.seq.QueueSize, "queue", f.seq.QueueSize, "pending requests before the service pushes back (503)")
	fs.Int64Var(&f.limits.MaxStatementBytes, "max-statement-bytes", f.limits.MaxStatementBytes, "largest signed statement accepted")
	fs.Int64Var(&f.limits.MaxGovBytes, "max-gov-bytes", f.limits.MaxGovBytes, "largest signed governance request accepted")
	fs.Var(&f.memberCerts, "member-cert", "initial member certificate (PEM), repeatable; none: member0 is created in --data")
	fs.StringVar(&f.constitutionDir, "constitution", "", "folder of constitution modules (*.js); default: the embedded scripts/constitution")
	// The script budget is ledger state (set_js_runtime_options); these are
	// the process's safety nets: tripping one refuses the request.
	f.scripts = constitution.DefaultSafetyNet()
	scriptSafetyFlags(fs, &f.scripts)
}

// genesis reads the initial members and the constitution named by flags.
func (f *serveFlags) genesis() ([]gov.InitialMember, string, error) {
	var members []gov.InitialMember
	for _, path := range f.memberCerts {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, "", err
		}
		members = append(members, gov.InitialMember{CertPEM: b})
	}
	if f.constitutionDir == "" {
		return members, "", nil
	}
	files := map[string]string{}
	entries, err := os.ReadDir(f.constitutionDir)
	if err != nil {
		return nil, "", err
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".js") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(f.constitutionDir, e.Name()))
		if err != nil {
			return nil, "", err
		}
		files[e.Name()] = string(b)
	}
	module, err := constitution.Bundle(files)
	if err != nil {
		return nil, "", fmt.Errorf("constitution %s: %w", f.constitutionDir, err)
	}
	return members, module, nil
}

func runServe(args []string, out, errOut io.Writer) int {
	fs := newFlags("serve", errOut)
	var f serveFlags
	f.register(fs)
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(errOut, fs, "unexpected arguments %v", pos)
	}
	if err := constitution.CheckSafetyNet(f.scripts); err != nil {
		return usageError(errOut, fs, "%v", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageError(errOut, fs, "bad --log-level %q", f.logLevel)
	}
	logger := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, f, logger); err != nil {
		logger.Error("serve", slog.Any("err", err))
		return exitFailed
	}
	return exitOK
}

// endpoints is DIR/endpoints.json: where a running replica listens.
type endpoints struct {
	HTTP string `json:"http"`
	NATS string `json:"nats"`
}

func serve(ctx context.Context, f serveFlags, logger *slog.Logger) error {
	// Listen for HTTP first so a busy port fails before anything is created.
	ln, err := net.Listen("tcp", f.httpListen)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	defer ln.Close()
	logger.Info("http listening", slog.String("http", "http://"+ln.Addr().String()))
	members, module, err := f.genesis()
	if err != nil {
		return err
	}
	r, err := replica.Open(ctx, replica.Config{DataDir: f.data, NATSListen: f.natsListen, Sequencer: f.seq, Logger: logger,
		Members: members, ConstitutionModule: module, MaxGovRequestBytes: f.limits.MaxGovBytes, ScriptLimits: f.scripts})
	if err != nil {
		return err
	}
	defer r.Close()
	ep := endpoints{HTTP: "http://" + ln.Addr().String(), NATS: r.NATSURL()}
	logger.Info("serving", slog.String("http", ep.HTTP), slog.String("nats", ep.NATS),
		slog.String("data", f.data), slog.String("client_creds", r.ClientCredsFile()))

	natsSrv, err := handlers.ServeNATS(r.Conn(), r, f.limits, handlers.DefaultInFlight, logger)
	if err != nil {
		return err
	}
	defer natsSrv.Stop()
	httpSrv := &http.Server{
		Handler:           handlers.NewHTTP(r, f.limits, logger),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()

	epPath := filepath.Join(f.data, "endpoints.json")
	b, _ := json.Marshal(ep)
	if err := os.WriteFile(epPath+".tmp", b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(epPath+".tmp", epPath); err != nil {
		return err
	}
	defer os.Remove(epPath)

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return httpSrv.Shutdown(shutdownCtx)
}

// scriptSafetyFlags registers the script safety-net flags (serve, audit
// replay).
func scriptSafetyFlags(fs *flag.FlagSet, l *constitution.Limits) {
	fs.DurationVar(&l.Timeout, "script-timeout", l.Timeout, fmt.Sprintf("wall-clock safety net of one constitution or ballot call (%v to %v); the budget itself is ledger state", constitution.MinTimeout, constitution.MaxTimeout))
	fs.Uint64Var(&l.MaxHeapGrowth, "script-heap", l.MaxHeapGrowth, fmt.Sprintf("heap growth safety net of one script call, bytes (%d to %d)", constitution.MinHeapGrowth, constitution.MaxHeapGrowthCap))
}

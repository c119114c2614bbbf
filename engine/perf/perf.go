// Package perf owns gavel's performance measurements: the baselines (raw
// JetStream publish, one message at a time and in atomic batches, on a
// throwaway SyncAlways server), the end-to-end commit run (signed
// statements registered through NATS into a real replica), the scale run
// (cost per entry from the first window to the millionth entry) and the
// governance run (ballots against the signature-verification ceiling),
// measured in one process on one machine so that results are ratios, not
// absolute claims.
package perf

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/handlers"
)

// Config sets a commit benchmark's size.
type Config struct {
	Dir          string // scratch folder (removed afterwards by the caller)
	Requests     int    // registrations in the peak (closed-loop) run
	Clients      int    // concurrent requesters in the peak run
	RawOne       int    // messages in the one-at-a-time baseline
	HalfLoad     time.Duration
	Statements   int // distinct pre-signed statements cycled through
	PayloadBytes int
	Sequencer    sequencer.Config
	Logger       *slog.Logger
	// Peer, when set, is measured after gavel in the same run.
	Peer Peer
}

// DefaultConfig is what `gavel bench commit` runs.
func DefaultConfig(dir string) Config {
	return Config{Dir: dir, Requests: 30000, Clients: 512, RawOne: 500, HalfLoad: 5 * time.Second,
		Statements: 1000, PayloadBytes: 256, Sequencer: sequencer.DefaultConfig()}
}

// Latency summarises request latencies.
type Latency struct {
	P50 time.Duration `json:"p50"`
	P99 time.Duration `json:"p99"`
	Max time.Duration `json:"max"`
}

// CommitReport is the result of a commit benchmark.
type CommitReport struct {
	EntryBytes     int     `json:"entry_bytes"`
	RawOnePerSec   float64 `json:"raw_publish_one_per_sec"`  // (a)
	RawBatchPerSec float64 `json:"raw_atomic_batch_per_sec"` // (b), at gavel's mean batch size
	RawBatch100    float64 `json:"raw_atomic_batch_100_per_sec"`
	BatchSize      int     `json:"batch_size"`             // gavel's mean entries per round
	GavelPerSec    float64 `json:"gavel_register_per_sec"` // (c), closed loop at peak
	PeakLatency    Latency `json:"peak_latency"`
	// PeakCPUPerEntry is the process's CPU time (user and system: the
	// replica, its NATS server and the benchmark's clients) per
	// registration in the peak run; PeakCores is that CPU over the run's
	// wall-clock time.
	PeakCPUPerEntry time.Duration `json:"peak_cpu_per_entry"`
	PeakCores       float64       `json:"peak_cores"`
	// PeakAppend is the mean time from sending a round to its ack at peak.
	PeakAppend      time.Duration `json:"peak_append"`
	HalfLoadPerSec  float64       `json:"half_load_offered_per_sec"`
	HalfLoadLatency Latency       `json:"half_load_latency"`
	// ReceiptLag is the time from a registration's answer to the first
	// signature entry covering it (its receipt exists from then), at half load.
	ReceiptLag Latency     `json:"receipt_lag"`
	Peer       *PeerReport `json:"peer,omitempty"`
	VsRawOne   float64     `json:"ratio_vs_raw_one"`   // target ≥ 10
	VsRawBatch float64     `json:"ratio_vs_raw_batch"` // target ≥ 0.5
	Errors     int64       `json:"errors"`
}

// RunCommit measures (a), (b) and (c) in one process.
func RunCommit(ctx context.Context, cfg Config) (*CommitReport, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	rep := &CommitReport{}

	// The replica under test, reached over real loopback TCP with the
	// client credentials a submitter would hold.
	var appendNanos atomic.Int64
	seq := cfg.Sequencer
	seq.OnRound = func(rr sequencer.RoundReport) { appendNanos.Add(int64(rr.Append)) }
	r, client, stop, err := serve(ctx, replica.Config{DataDir: filepath.Join(cfg.Dir, "gavel"), Sequencer: seq, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	defer stop()

	statements, err := signStatements(cfg.Statements, cfg.PayloadBytes)
	if err != nil {
		return nil, err
	}
	if rep.EntryBytes, err = entrySize(r, statements[0]); err != nil {
		return nil, err
	}

	// (c) at peak: a closed loop of Clients requesters.
	r0, e0 := r.Sequencer().Stats()
	a0 := appendNanos.Load()
	m := startMeter()
	peak, lat, errs, err := closedLoop(ctx, client, statements, cfg.Requests, cfg.Clients)
	if err != nil {
		return nil, err
	}
	wall, cpu := m.stop()
	r1, e1 := r.Sequencer().Stats()
	rep.PeakCPUPerEntry, rep.PeakCores = cpu/time.Duration(cfg.Requests), cpu.Seconds()/wall.Seconds()
	rep.GavelPerSec, rep.PeakLatency, rep.Errors = peak, lat, errs
	if r1 > r0 {
		rep.BatchSize = int((e1 - e0 + (r1-r0)/2) / (r1 - r0))
		rep.PeakAppend = time.Duration(appendNanos.Load()-a0) / time.Duration(r1-r0)
	}
	rep.BatchSize = max(1, min(rep.BatchSize, natslog.MaxBatchMessages))

	// (c) at half of peak: an open loop at a fixed offered rate.
	rep.HalfLoadPerSec = peak / 2
	hl, lag, herrs, err := gavelReceiptLag(ctx, r, client, statements, rep.HalfLoadPerSec, cfg.HalfLoad)
	if err != nil {
		return nil, err
	}
	rep.HalfLoadLatency, rep.ReceiptLag = hl, lag
	rep.Errors += herrs

	// (a) and (b) on a throwaway server of the same kind, same disk, with
	// entries of the size gavel writes.
	payload := make([]byte, rep.EntryBytes)
	if err := baselines(ctx, filepath.Join(cfg.Dir, "baseline"), cfg, payload, rep); err != nil {
		return nil, err
	}
	rep.VsRawOne = rep.GavelPerSec / rep.RawOnePerSec
	rep.VsRawBatch = rep.GavelPerSec / rep.RawBatchPerSec
	if cfg.Peer != nil {
		stop() // the peer gets the machine to itself, as gavel had it
		if rep.Peer, err = runPeer(ctx, cfg.Peer, cfg, statements, rep.EntryBytes); err != nil {
			return nil, err
		}
		rep.Peer.GavelVsPeer = rep.GavelPerSec / rep.Peer.PerSec
	}
	return rep, nil
}

// serve starts a replica serving NATS on a loopback port, and connects a
// client with the client credentials a submitter would hold.
func serve(ctx context.Context, cfg replica.Config) (*replica.Replica, *nats.Conn, func(), error) {
	cfg.NATSListen = "127.0.0.1:0"
	r, err := replica.Open(ctx, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	natsCfg := handlers.DefaultNATSConfig(cfg.Sequencer.WithDefaults().QueueSize, handlers.DefaultLimits())
	natsCfg.HasInterest = r.HasInterest
	srv, err := handlers.ServeNATS(r.HandlerConn(), r, handlers.DefaultLimits(), natsCfg, cfg.Logger)
	if err != nil {
		r.Close()
		return nil, nil, nil, err
	}
	opt, err := natslog.ConnectOptions(r.ClientCredsFile(natslog.UserMember))
	var client *nats.Conn
	if err == nil {
		client, err = nats.Connect(r.NATSURL(), opt, nats.Name("gavel-bench"))
	}
	if err != nil {
		srv.Stop()
		r.Close()
		return nil, nil, nil, err
	}
	return r, client, sync.OnceFunc(func() { client.Close(); srv.Stop(); r.Close() }), nil
}

func baselines(ctx context.Context, dir string, cfg Config, payload []byte, rep *CommitReport) error {
	emb, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer emb.Shutdown()
	nc, err := emb.ConnectReplica()
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := natslog.EnsureStreams(ctx, js, 1); err != nil {
		return err
	}
	if rep.RawOnePerSec, err = natslog.MeasureRawPublish(ctx, js, cfg.RawOne, payload); err != nil {
		return err
	}
	n := max(cfg.Requests, 20*rep.BatchSize)
	if rep.RawBatchPerSec, err = natslog.MeasureAtomicBatch(ctx, nc, n, rep.BatchSize, payload); err != nil {
		return err
	}
	rep.RawBatch100, err = natslog.MeasureAtomicBatch(ctx, nc, max(cfg.Requests, 2000), 100, payload)
	return err
}

// signStatements pre-signs n distinct ES256 statements.
func signStatements(n, payloadBytes int) ([][]byte, error) {
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		return nil, err
	}
	out := make([][]byte, n)
	payload := make([]byte, payloadBytes)
	for i := range out {
		copy(payload, fmt.Sprintf("statement %d ", i))
		if out[i], err = iss.Sign(fmt.Sprintf("bench/%d", i), "application/octet-stream", payload, time.Now()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// entrySize is the encoded size of the entry a statement becomes.
func entrySize(r *replica.Replica, st []byte) (int, error) {
	cmd, err := r.VerifyStatement(st)
	if err != nil {
		return 0, err
	}
	e := &engine.Entry{Kind: cmd.Kind(), View: 1, Seqno: 1, Input: cmd.Input()}
	eff, err := cmd.Execute(nil, engine.Facts{TxID: e.TxID()})
	if err != nil {
		return 0, err
	}
	e.Writes, e.ClaimsDigest, e.Result = eff.Writes, eff.ClaimsDigest, eff.Result
	e.Seal()
	b, err := e.Encode()
	return len(b), err
}

// call sends one request on subject and expects the status want.
func call(nc *nats.Conn, subject, want string, body []byte) error {
	msg, err := nc.Request(subject, body, 30*time.Second)
	if err != nil {
		return err
	}
	if s := msg.Header.Get(handlers.StatusHeader); s != want {
		return fmt.Errorf("status %s: %s", s, msg.Data)
	}
	return nil
}

// closedLoop registers total statements (cycling through sts) from clients
// concurrent requesters.
func closedLoop(ctx context.Context, nc *nats.Conn, sts [][]byte, total, clients int) (float64, Latency, int64, error) {
	return requestLoop(ctx, nc, handlers.SubjectStatement, "201", sts, total, clients)
}

// requestLoop sends total requests on subject, cycling through bodies,
// from clients concurrent requesters, each expecting the status want. More
// than 1% failures fail the run.
func requestLoop(ctx context.Context, nc *nats.Conn, subject, want string, bodies [][]byte, total, clients int) (float64, Latency, int64, error) {
	return closedLoopOf(ctx, subject, total, clients, func(i int) error {
		return call(nc, subject, want, bodies[i%len(bodies)])
	})
}

// closedLoopOf runs do(0…total-1) from clients concurrent workers, each
// starting its next call when the last returns, and reports the rate and
// latencies. More than 1% failures fail the run; what names the calls in
// that error.
func closedLoopOf(ctx context.Context, what string, total, clients int, do func(i int) error) (float64, Latency, int64, error) {
	lats := make([]time.Duration, total)
	var next, errs, completed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	stop := reportProgress(ctx, what, total, &completed)
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(total) || ctx.Err() != nil {
					return
				}
				t := time.Now()
				if err := do(int(i)); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				lats[i] = time.Since(t)
				completed.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stop()
	if e := errs.Load(); e > int64(total)/100 {
		return 0, Latency{}, e, fmt.Errorf("%d of %d requests on %s failed, first: %v", e, total, what, firstErr.Load())
	}
	return float64(total) / elapsed.Seconds(), summarise(lats), errs.Load(), nil
}

// openLoopOf offers do(i) at a fixed rate for d, whatever the answers do
// (an open loop: a slow answer does not slow the offered load).
func openLoopOf(ctx context.Context, rate float64, d time.Duration, do func(i int) error) (Latency, int64, error) {
	n := int(rate * d.Seconds())
	if n < 1 {
		return Latency{}, 0, nil
	}
	interval := time.Duration(float64(time.Second) / rate)
	lats := make([]time.Duration, n)
	var errs, completed atomic.Int64
	var wg sync.WaitGroup
	stop := reportProgress(ctx, "half load", n, &completed)
	defer stop()
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			if err := do(i); err != nil {
				errs.Add(1)
			}
			lats[i] = time.Since(t)
			completed.Add(1)
		}()
	}
	wg.Wait()
	return summarise(lats), errs.Load(), ctx.Err()
}

func summarise(lats []time.Duration) Latency {
	s := slices.Clone(lats)
	slices.Sort(s)
	if len(s) == 0 {
		return Latency{}
	}
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return Latency{P50: q(0.50), P99: q(0.99), Max: s[len(s)-1]}
}

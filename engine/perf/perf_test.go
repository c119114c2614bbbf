package perf

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/handlers"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestRunCommitSmall runs `gavel bench commit` at toy size and checks the
// report is self-consistent. It asserts no speed.
func TestRunCommitSmall(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.Requests, cfg.Clients, cfg.RawOne, cfg.HalfLoad = 500, 32, 50, 300*time.Millisecond
	cfg.Statements = 200
	cfg.Logger = quietLogger()
	rep, err := RunCommit(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", rep)
	for name, v := range map[string]float64{
		"raw one": rep.RawOnePerSec, "raw batch": rep.RawBatchPerSec, "raw batch 100": rep.RawBatch100,
		"gavel": rep.GavelPerSec, "half load": rep.HalfLoadPerSec,
	} {
		if !(v > 0) {
			t.Errorf("%s rate %v, want > 0", name, v)
		}
	}
	if rep.BatchSize < 1 || rep.BatchSize > natslog.MaxBatchMessages {
		t.Errorf("batch size %d outside [1, %d]", rep.BatchSize, natslog.MaxBatchMessages)
	}
	if rep.Errors != 0 {
		t.Errorf("%d errors", rep.Errors)
	}
	if rep.EntryBytes < cfg.PayloadBytes {
		t.Errorf("entry of %d bytes is smaller than its %d-byte payload", rep.EntryBytes, cfg.PayloadBytes)
	}
	if rep.VsRawOne != rep.GavelPerSec/rep.RawOnePerSec || rep.VsRawBatch != rep.GavelPerSec/rep.RawBatchPerSec {
		t.Errorf("ratios %v, %v are not computed from the rates", rep.VsRawOne, rep.VsRawBatch)
	}
	if rep.HalfLoadPerSec != rep.GavelPerSec/2 {
		t.Errorf("half load offered %v, peak %v", rep.HalfLoadPerSec, rep.GavelPerSec)
	}
	for name, l := range map[string]Latency{"peak": rep.PeakLatency, "half load": rep.HalfLoadLatency} {
		if l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max {
			t.Errorf("%s latency %+v is not ordered 0 < p50 ≤ p99 ≤ max", name, l)
		}
	}
}

// TestRunScaleSmall runs the scale measurement at toy size: every window is
// reported and the ratios are computed from them. It asserts no speed.
func TestRunScaleSmall(t *testing.T) {
	var progress []ScaleWindow
	cfg := ScaleConfig{Dir: t.TempDir(), Entries: 20_000, Window: 5_000, Clients: 128, Logger: quietLogger(),
		Progress: func(w ScaleWindow) { progress = append(progress, w) }}
	rep, err := RunScale(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range rep.Windows {
		t.Logf("window %d: %d statements, seqno %d, %.0f entries/s, p50 %v p99 %v, state %d bytes",
			w.Index, w.Statements, w.LedgerSeqno, w.PerSec, w.Latency.P50, w.Latency.P99, w.StateBytes)
	}
	t.Logf("ledger %d entries, tree %d, state %d bytes, log %d bytes, last/first %.2f, p99 last/first %.2f",
		rep.LedgerSeqno, rep.TreeSize, rep.StateBytes, rep.LogBytes, rep.LastVsFirst, rep.P99LastVsFirst)
	if len(rep.Windows) != 4 || len(progress) != 4 {
		t.Fatalf("%d windows reported, %d progress calls, want 4", len(rep.Windows), len(progress))
	}
	var prev uint64
	for i, w := range rep.Windows {
		if w.Index != i || w.Statements != 5_000 || !(w.PerSec > 0) || w.Latency.P99 <= 0 || w.Errors != 0 {
			t.Fatalf("window %d: %+v", i, w)
		}
		// Each window adds its statements and some signatures.
		if w.LedgerSeqno < prev+5_000 {
			t.Fatalf("window %d ends at seqno %d, the previous at %d", i, w.LedgerSeqno, prev)
		}
		if w.StateBytes <= 0 || w.HeapBytes <= 0 || w.RSSBytes <= 0 || progress[i] != w {
			t.Fatalf("window %d: state %d bytes, progress %+v", i, w.StateBytes, progress[i])
		}
		prev = w.LedgerSeqno
	}
	first, last := rep.Windows[0], rep.Windows[3]
	if rep.LastVsFirst != last.PerSec/first.PerSec ||
		rep.P99LastVsFirst != float64(last.Latency.P99)/float64(first.Latency.P99) {
		t.Fatalf("ratios %v, %v are not computed from the first and last windows", rep.LastVsFirst, rep.P99LastVsFirst)
	}
	// genesis + 20,000 statements + at least one signature per 1,000 entries
	if rep.LedgerSeqno < 20_000+1+20 || rep.TreeSize != rep.LedgerSeqno+1 {
		t.Fatalf("ledger at %d, tree of %d leaves", rep.LedgerSeqno, rep.TreeSize)
	}
	t.Logf("replica released %d heap bytes, %d RSS bytes; heap growth %.1f bytes/entry", rep.ReplicaHeapBytes, rep.ReplicaRSSBytes, rep.HeapPerEntry)
	if want := float64(last.HeapBytes-first.HeapBytes) / float64(last.LedgerSeqno-first.LedgerSeqno); rep.HeapPerEntry != want {
		t.Fatalf("heap growth %v bytes/entry, not computed from the first and last windows (%v)", rep.HeapPerEntry, want)
	}
	if rep.StateBytes <= 0 || rep.LogBytes < int64(20_000*cfg.PayloadBytes) || rep.Errors != 0 || rep.Elapsed <= 0 || rep.ReplicaHeapBytes <= 0 {
		t.Fatalf("report %+v", rep)
	}
}

func TestRunScaleRefusesBadSizes(t *testing.T) {
	for _, cfg := range []ScaleConfig{
		{Dir: t.TempDir(), Entries: 0, Window: 1, Clients: 1},
		{Dir: t.TempDir(), Entries: 1, Window: 0, Clients: 1},
		{Dir: t.TempDir(), Entries: 1, Window: 1, Clients: 0},
	} {
		if _, err := RunScale(context.Background(), cfg); err == nil {
			t.Fatalf("%+v accepted", cfg)
		}
	}
}

func TestWindowRatios(t *testing.T) {
	w := func(rate float64, p99 time.Duration) ScaleWindow {
		return ScaleWindow{PerSec: rate, Latency: Latency{P99: p99}}
	}
	for _, tc := range []struct {
		name            string
		ws              []ScaleWindow
		throughput, p99 float64
	}{
		{"none", nil, 0, 0},
		{"one window", []ScaleWindow{w(100, time.Millisecond)}, 1, 1},
		{"flat", []ScaleWindow{w(100, time.Millisecond), w(50, time.Second), w(100, time.Millisecond)}, 1, 1},
		{"slower and later", []ScaleWindow{w(200, 10*time.Millisecond), w(150, 15*time.Millisecond), w(100, 40*time.Millisecond)}, 0.5, 4},
		{"first empty", []ScaleWindow{w(0, 0), w(100, time.Millisecond)}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th, p := windowRatios(tc.ws)
			if th != tc.throughput || p != tc.p99 {
				t.Fatalf("got %v, %v; want %v, %v", th, p, tc.throughput, tc.p99)
			}
		})
	}
}

// commitBench holds what BenchmarkCommit's sub-benchmarks share, set up on
// first use and outside their timers.
type commitBench struct {
	parent     *testing.B // owns the temporary folders and the cleanups
	entryBytes int

	r      *replica.Replica
	client *nats.Conn

	raw   *natslog.Embedded
	rawNC *nats.Conn
	rawJS jetstream.JetStream
}

// replica starts the replica under test with its NATS handlers and a client
// connection holding the client credentials.
func (c *commitBench) replica(b *testing.B) {
	if c.r != nil {
		return
	}
	ctx, logger := context.Background(), quietLogger()
	r, err := replica.Open(ctx, replica.Config{DataDir: filepath.Join(c.parent.TempDir(), "gavel"), NATSListen: "127.0.0.1:0",
		Sequencer: sequencer.DefaultConfig(), Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	c.parent.Cleanup(func() { r.Close() })
	natsCfg := handlers.DefaultNATSConfig(sequencer.DefaultConfig().QueueSize, handlers.DefaultLimits())
	natsCfg.HasInterest = r.HasInterest
	srv, err := handlers.ServeNATS(r.HandlerConn(), r, handlers.DefaultLimits(), natsCfg, logger)
	if err != nil {
		b.Fatal(err)
	}
	c.parent.Cleanup(srv.Stop)
	opt, err := natslog.ConnectOptions(r.ClientCredsFile(natslog.UserMember))
	if err != nil {
		b.Fatal(err)
	}
	if c.client, err = nats.Connect(r.NATSURL(), opt, nats.Name("gavel-bench")); err != nil {
		b.Fatal(err)
	}
	c.parent.Cleanup(c.client.Close)
	sts, err := signStatements(1, 256)
	if err != nil {
		b.Fatal(err)
	}
	if c.entryBytes, err = entrySize(r, sts[0]); err != nil {
		b.Fatal(err)
	}
	c.r = r
}

// baseline starts the throwaway SyncAlways server of the raw baselines.
func (c *commitBench) baseline(b *testing.B) {
	if c.raw != nil {
		return
	}
	c.replica(b) // for the entry size
	emb, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: filepath.Join(c.parent.TempDir(), "baseline"), Listen: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	c.parent.Cleanup(emb.Shutdown)
	if c.rawNC, err = emb.ConnectReplica(); err != nil {
		b.Fatal(err)
	}
	c.parent.Cleanup(c.rawNC.Close)
	if c.rawJS, err = jetstream.New(c.rawNC); err != nil {
		b.Fatal(err)
	}
	if err := natslog.EnsureStreams(context.Background(), c.rawJS, 1); err != nil {
		b.Fatal(err)
	}
	c.raw = emb
}

// report publishes a run's figures as benchmark metrics.
func report(b *testing.B, n int, elapsed time.Duration, lats []time.Duration) {
	l := summarise(lats)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "entries/s")
	b.ReportMetric(float64(l.P50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(l.P99.Microseconds())/1000, "p99-ms")
}

// BenchmarkCommit is `gavel bench commit` inside go test -bench: the raw
// JetStream baselines with entries of the size gavel writes, and gavel's
// own registration through NATS at 256 concurrent requesters.
func BenchmarkCommit(b *testing.B) {
	c := &commitBench{parent: b}
	ctx := context.Background()

	b.Run("raw-one", func(b *testing.B) {
		c.baseline(b)
		payload := make([]byte, c.entryBytes)
		lats := make([]time.Duration, b.N)
		b.SetBytes(int64(len(payload)))
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			t := time.Now()
			if _, err := c.rawJS.Publish(ctx, natslog.BenchSubject, payload); err != nil {
				b.Fatal(err)
			}
			lats[i] = time.Since(t)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		report(b, b.N, elapsed, lats)
	})

	b.Run("raw-batch-100", func(b *testing.B) {
		c.baseline(b)
		p, err := natslog.NewPublisher(c.rawNC)
		if err != nil {
			b.Fatal(err)
		}
		last, err := p.LastSequence(ctx)
		if err != nil {
			b.Fatal(err)
		}
		payload := make([]byte, c.entryBytes)
		batch := make([]natslog.Msg, 100)
		for i := range batch {
			batch[i] = natslog.Msg{Subject: natslog.BenchSubject, Data: payload}
		}
		// Every message of a batch waits for the batch's commit.
		lats := make([]time.Duration, 0, b.N)
		b.SetBytes(int64(len(payload)))
		b.ResetTimer()
		start := time.Now()
		for left := b.N; left > 0; left -= len(batch) {
			msgs := batch[:min(left, len(batch))]
			t := time.Now()
			if last, err = p.PublishBatch(ctx, msgs, last); err != nil {
				b.Fatal(err)
			}
			for d := time.Since(t); len(msgs) > 0; msgs = msgs[1:] {
				lats = append(lats, d)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		report(b, b.N, elapsed, lats)
	})

	b.Run("gavel-register", func(b *testing.B) {
		c.replica(b)
		// Distinct statements, so every registration is a new entry.
		sts, err := signParallel(b.N, 256)
		if err != nil {
			b.Fatal(err)
		}
		r0, e0 := c.r.Sequencer().Stats()
		b.ResetTimer()
		start := time.Now()
		_, lat, errs, err := closedLoop(ctx, c.client, sts, b.N, 256)
		elapsed := time.Since(start)
		b.StopTimer()
		if err != nil || errs != 0 {
			b.Fatalf("%d errors: %v", errs, err)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
		b.ReportMetric(float64(lat.P50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat.P99.Microseconds())/1000, "p99-ms")
		if r1, e1 := c.r.Sequencer().Stats(); r1 > r0 {
			b.ReportMetric(float64(e1-e0)/float64(r1-r0), "entries/round")
		}
	})
}

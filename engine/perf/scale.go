package perf

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
)

// ScaleConfig sets a scale run's size.
type ScaleConfig struct {
	Dir          string // scratch folder (removed afterwards by the caller)
	Entries      int    // statements registered in all
	Window       int    // statements per measured window
	Clients      int    // concurrent requesters
	PayloadBytes int    // statement payload size; 256 when 0
	// Sequencer is the replica's sequencer; sequencer.DefaultConfig() when
	// its MaxBatch is 0.
	Sequencer sequencer.Config
	Logger    *slog.Logger
	// Progress, when set, is called after each window.
	Progress func(ScaleWindow)
}

// DefaultScaleConfig is what `gavel bench scale` runs: a million entries.
func DefaultScaleConfig(dir string) ScaleConfig {
	return ScaleConfig{Dir: dir, Entries: 1_000_000, Window: 50_000, Clients: 256, PayloadBytes: 256,
		Sequencer: sequencer.DefaultConfig()}
}

// ScaleWindow is one measured window of a scale run.
type ScaleWindow struct {
	Index       int     `json:"index"`
	Statements  int     `json:"statements"`   // registered in this window
	LedgerSeqno uint64  `json:"ledger_seqno"` // ledger size at the window's end
	PerSec      float64 `json:"entries_per_sec"`
	Latency     Latency `json:"latency"`
	StateBytes  int64   `json:"state_bytes"` // pebble folder on disk at the window's end
	// HeapBytes is the Go heap in use after a collection at the window's
	// end, RSSBytes the process's resident set then (off the clock).
	HeapBytes int64 `json:"heap_bytes"`
	RSSBytes  int64 `json:"rss_bytes"`
	Errors    int64 `json:"errors"`
}

// ScaleReport is the result of a scale run.
type ScaleReport struct {
	Entries int           `json:"entries"`
	Window  int           `json:"window"`
	Clients int           `json:"clients"`
	Windows []ScaleWindow `json:"windows"`
	// LedgerSeqno counts every entry: genesis, statements and signatures.
	LedgerSeqno uint64 `json:"ledger_seqno"`
	// TreeSize is the Merkle tree's leaf count (CCF's zero leaf 0 included).
	TreeSize   uint64 `json:"merkle_tree_size"`
	StateBytes int64  `json:"state_bytes"` // pebble state on disk
	LogBytes   int64  `json:"log_bytes"`   // JetStream store on disk
	// LastVsFirst is the last window's throughput over the first's, and
	// P99LastVsFirst the same for p99 latency: flat cost means both near 1.
	// HeapBytes is the Go heap in use after a collection at the end, and
	// MaxRSSBytes the process's peak resident set (the replica, its
	// embedded NATS server and the benchmark's clients share the process).
	HeapBytes   uint64 `json:"heap_bytes"`
	MaxRSSBytes int64  `json:"max_rss_bytes"`
	// ReplicaHeapBytes and ReplicaRSSBytes are what the replica (with its
	// embedded NATS server) released when it stopped: its own memory.
	ReplicaHeapBytes int64 `json:"replica_heap_bytes"`
	ReplicaRSSBytes  int64 `json:"replica_rss_bytes"`
	// HeapPerEntry is the Go heap's growth from the first window's end to
	// the last's, per entry registered in between: near 0 when memory
	// does not grow with the ledger.
	HeapPerEntry   float64       `json:"heap_growth_per_entry_bytes"`
	LastVsFirst    float64       `json:"last_vs_first_throughput"`
	P99LastVsFirst float64       `json:"last_vs_first_p99"`
	Errors         int64         `json:"errors"`
	Elapsed        time.Duration `json:"elapsed"` // registration time, signing excluded
}

// RunScale registers cfg.Entries distinct statements into one fresh replica
// over NATS, in windows of cfg.Window, each a closed loop of cfg.Clients
// requesters, and reports throughput and latency per window: whether the
// cost of an entry stays flat as the ledger, the state and the Merkle tree
// grow. Each window's statements are signed before it starts (off the
// clock, on every core), so every registration is a new claims digest.
func RunScale(ctx context.Context, cfg ScaleConfig) (*ScaleReport, error) {
	if cfg.Entries <= 0 || cfg.Window <= 0 || cfg.Clients <= 0 {
		return nil, engine.Errorf(engine.KindInvalid, "InvalidBenchmark", "entries, window and clients must be positive")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if cfg.PayloadBytes <= 0 {
		cfg.PayloadBytes = 256
	}
	if cfg.Sequencer.MaxBatch == 0 {
		cfg.Sequencer = sequencer.DefaultConfig()
	}
	dataDir := filepath.Join(cfg.Dir, "gavel")
	r, client, stop, err := serve(ctx, replica.Config{DataDir: dataDir, Sequencer: cfg.Sequencer, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	defer stop()

	rep := &ScaleReport{Entries: cfg.Entries, Window: cfg.Window, Clients: cfg.Clients}
	for done := 0; done < cfg.Entries; {
		n := min(cfg.Window, cfg.Entries-done)
		sts, err := signParallel(n, cfg.PayloadBytes)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		rate, lat, errs, err := closedLoop(ctx, client, sts, n, cfg.Clients)
		rep.Elapsed += time.Since(start)
		if err != nil {
			return nil, err
		}
		w := ScaleWindow{Index: len(rep.Windows), Statements: n, LedgerSeqno: r.Store().Meta().Seqno,
			PerSec: rate, Latency: lat, Errors: errs}
		if w.StateBytes, err = dirSize(filepath.Join(dataDir, "state")); err != nil {
			return nil, err
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.HeapBytes, w.RSSBytes = int64(ms.HeapInuse), residentSet()
		rep.Windows = append(rep.Windows, w)
		rep.Errors += errs
		done += n
		if cfg.Progress != nil {
			cfg.Progress(w)
		}
	}
	// Let the last signature land so the sizes are those of a signed ledger.
	waitSigned(ctx, r, 10*time.Second)
	meta := r.Store().Meta()
	rep.LedgerSeqno, rep.TreeSize = meta.Seqno, r.Store().Tree().Size()
	if rep.StateBytes, err = dirSize(filepath.Join(dataDir, "state")); err != nil {
		return nil, err
	}
	if rep.LogBytes, err = dirSize(filepath.Join(dataDir, "nats")); err != nil {
		return nil, err
	}
	rep.LastVsFirst, rep.P99LastVsFirst = windowRatios(rep.Windows)
	if n := len(rep.Windows); n > 1 {
		first, last := rep.Windows[0], rep.Windows[n-1]
		rep.HeapPerEntry = float64(last.HeapBytes-first.HeapBytes) / float64(last.LedgerSeqno-first.LedgerSeqno)
	}
	rep.HeapBytes, rep.MaxRSSBytes = memoryInUse()
	before := memorySnapshot()
	stop()
	after := memorySnapshot()
	rep.ReplicaHeapBytes, rep.ReplicaRSSBytes = before.heap-after.heap, before.rss-after.rss
	return rep, nil
}

// windowRatios compares the last window with the first: throughput and
// p99 latency, last over first (0 when the first is 0).
func windowRatios(ws []ScaleWindow) (throughput, p99 float64) {
	if len(ws) == 0 {
		return 0, 0
	}
	first, last := ws[0], ws[len(ws)-1]
	if first.PerSec > 0 {
		throughput = last.PerSec / first.PerSec
	}
	if first.Latency.P99 > 0 {
		p99 = float64(last.Latency.P99) / float64(first.Latency.P99)
	}
	return throughput, p99
}

// signParallel pre-signs n distinct statements on every core.
func signParallel(n, payloadBytes int) ([][]byte, error) {
	workers := max(1, min(runtime.GOMAXPROCS(0), n/1000))
	out := make([][]byte, 0, n)
	parts := make([][][]byte, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		size := n / workers
		if i < n%workers {
			size++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i], errs[i] = signStatements(size, payloadBytes)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}

// waitSigned waits, at most d, until a signature entry covers the ledger.
func waitSigned(ctx context.Context, r *replica.Replica, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if m := r.Store().Meta(); m.LastSignature == m.Seqno {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			// Files come and go under a live pebble or JetStream store.
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// memoryInUse is the Go heap in use after a collection, and the process's
// peak resident set size.
func memoryInUse() (heap uint64, maxRSS int64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		maxRSS = ru.Maxrss * 1024 // kilobytes on Linux
	}
	return ms.HeapInuse, maxRSS
}

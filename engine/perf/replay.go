package perf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/audit"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
)

// ReplayConfig sets a replay benchmark's size.
type ReplayConfig struct {
	Dir          string // scratch folder (removed afterwards by the caller)
	Entries      int    // statements registered before the replay
	Clients      int
	PayloadBytes int
	Logger       *slog.Logger
}

// DefaultReplayConfig is what `gavel bench replay` runs.
func DefaultReplayConfig(dir string) ReplayConfig {
	return ReplayConfig{Dir: dir, Entries: 50_000, Clients: 256, PayloadBytes: 256}
}

// ReplayReport compares the auditor's replay with a raw read of the same
// stream.
type ReplayReport struct {
	LedgerEntries uint64 `json:"ledger_entries"`
	// RawPerSec is an ordered consumer reading every message of
	// GAVEL_LEDGER and doing nothing with it: the floor of any replay.
	RawPerSec float64 `json:"raw_ordered_read_per_sec"`
	// RangePerSec is the read the replay uses (natslog.Reader.Range's
	// batched direct gets), doing nothing with what it reads.
	RangePerSec float64 `json:"range_read_per_sec"`
	// ReplayPerSec is `gavel audit replay`'s work: every entry
	// authenticated, every statement re-verified, every write set
	// re-derived, the Merkle tree rebuilt and every signature checked.
	ReplayPerSec float64 `json:"replay_per_sec"`
	Ratio        float64 `json:"replay_vs_raw"` // target ≥ 0.5
	// CPU per entry of each phase (the whole process: the NATS server
	// that serves the read included), and the cores each phase kept busy.
	RawCPUPerEntry    time.Duration `json:"raw_cpu_per_entry"`
	RangeCPUPerEntry  time.Duration `json:"range_cpu_per_entry"`
	ReplayCPUPerEntry time.Duration `json:"replay_cpu_per_entry"`
	ReplayCores       float64       `json:"replay_cores"`
	// Checks is what each check costs one core, measured in this run on
	// the ledger's first entries.
	Checks ReplayChecks `json:"checks"`
	Root   string       `json:"root"`
}

// ReplayChecks is the cost on one core of each check of a replay, per
// entry (per statement for Statement): the CPU time of the thread that
// ran it, so that other load on the machine does not count.
type ReplayChecks struct {
	Sample       int           `json:"sample_entries"`
	Authenticate time.Duration `json:"authenticate"` // the node's Ed25519 signature
	Decode       time.Duration `json:"decode"`       // the entry's CBOR
	Statement    time.Duration `json:"statement"`    // COSE parse, did:x509, ES256
	// Sequential is a whole replay of the sample on one goroutine, per
	// entry: the checks above plus the fold (write sets, tree, state).
	Sequential time.Duration `json:"sequential"`
	// Bound is what Sequential allows on every core, in entries/s, were
	// the read free and the checks perfectly parallel.
	Bound float64 `json:"bound_per_sec"`
}

// RunReplay registers cfg.Entries statements into a fresh replica, stops
// it, then reads its ledger on the stopped folder's JetStream store: a raw
// ordered-consumer read, the replay's own read doing nothing, and the
// auditor's replay; then it times each check on the first entries.
func RunReplay(ctx context.Context, cfg ReplayConfig) (*ReplayReport, error) {
	if cfg.Entries <= 0 || cfg.Clients <= 0 {
		return nil, engine.Errorf(engine.KindInvalid, "InvalidBenchmark", "entries and clients must be positive")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	dataDir := filepath.Join(cfg.Dir, "gavel")
	r, client, stop, err := serve(ctx, replica.Config{DataDir: dataDir, Sequencer: sequencer.DefaultConfig(), Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	sts, err := signParallel(cfg.Entries, cfg.PayloadBytes)
	if err == nil {
		_, _, _, err = closedLoop(ctx, client, sts, cfg.Entries, cfg.Clients)
	}
	if err != nil {
		stop()
		return nil, err
	}
	waitSigned(ctx, r, 10*time.Second)
	stop()

	emb, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: filepath.Join(dataDir, "nats"), Listen: "127.0.0.1:0", Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	defer emb.Shutdown()
	nc, err := emb.ConnectClient(natslog.UserAuditor)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	reader := natslog.NewReader(js)
	last, err := reader.LastSequence(ctx)
	if err != nil {
		return nil, err
	}
	rep := &ReplayReport{LedgerEntries: last}
	perEntry := func(d time.Duration) time.Duration { return d / time.Duration(last) }

	m := startMeter()
	if err := rawRead(ctx, js, last); err != nil {
		return nil, err
	}
	wall, cpu := m.stop()
	rep.RawPerSec, rep.RawCPUPerEntry = float64(last)/wall.Seconds(), perEntry(cpu)

	m = startMeter()
	if err := reader.Range(ctx, 1, func(engine.LedgerMsg) error { return nil }); err != nil {
		return nil, err
	}
	wall, cpu = m.stop()
	rep.RangePerSec, rep.RangeCPUPerEntry = float64(last)/wall.Seconds(), perEntry(cpu)

	replayer := audit.NewReplayer(verifyStatementAt)
	read := func(fn func(engine.LedgerMsg) error) error { return reader.Range(ctx, 1, fn) }
	m = startMeter()
	if err := replayer.AddAll(ctx, read, 0, nil); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	wall, cpu = m.stop()
	rep.ReplayPerSec, rep.ReplayCPUPerEntry, rep.ReplayCores = float64(last)/wall.Seconds(), perEntry(cpu), cpu.Seconds()/wall.Seconds()
	sum := replayer.Summary()
	if sum.Entries != last || len(sum.VoidEntries) != 0 {
		return nil, fmt.Errorf("replay checked %d of %d entries (%d void)", sum.Entries, last, len(sum.VoidEntries))
	}
	rep.Root, rep.Ratio = sum.Root, rep.ReplayPerSec/rep.RawPerSec
	if rep.Checks, err = timeChecks(ctx, reader, min(last, 2000)); err != nil {
		return nil, err
	}
	return rep, nil
}

func verifyStatementAt(raw []byte, f engine.Facts) (engine.Command, error) {
	return exec.VerifyStatement(raw, f.Time)
}

// timeChecks times each check of a replay, on one goroutine, over the
// ledger's first n entries.
func timeChecks(ctx context.Context, reader *natslog.Reader, n uint64) (ReplayChecks, error) {
	var msgs []engine.LedgerMsg
	if err := reader.RangeTo(ctx, 1, n, func(m engine.LedgerMsg) error { msgs = append(msgs, m); return nil }); err != nil {
		return ReplayChecks{}, err
	}
	if len(msgs) < 2 {
		return ReplayChecks{}, errors.New("no entries after genesis to time")
	}
	c := ReplayChecks{Sample: len(msgs)}
	// CPU time of this goroutine's own thread: what a check costs a core,
	// whatever else the machine runs.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	timeEach := func(items int, f func() error) (time.Duration, error) {
		start := threadCPU()
		err := f()
		return (threadCPU() - start) / time.Duration(max(items, 1)), err
	}
	var err error
	if c.Sequential, err = timeEach(len(msgs), func() error {
		r := audit.NewReplayer(verifyStatementAt)
		for _, m := range msgs {
			if err := r.Add(m); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return c, err
	}
	// The trusted set as of genesis, which every later entry here is
	// signed against.
	genesis, err := engine.DecodeEntry(msgs[0].Data)
	if err != nil {
		return c, err
	}
	trusted := engine.NewTrustedNodes()
	trusted.Observe(genesis.Writes)
	rest := msgs[1:]
	if c.Authenticate, err = timeEach(len(rest), func() error {
		for _, m := range rest {
			if _, err := trusted.Authenticate(m); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return c, err
	}
	var statements []*engine.Entry
	if c.Decode, err = timeEach(len(rest), func() error {
		for _, m := range rest {
			e, err := engine.DecodeEntry(m.Data)
			if err != nil {
				return err
			}
			if e.Kind == engine.KindStatement {
				statements = append(statements, e)
			}
		}
		return nil
	}); err != nil {
		return c, err
	}
	if c.Statement, err = timeEach(len(statements), func() error {
		for _, e := range statements {
			if _, err := verifyStatementAt(e.Input, engine.Facts{TxID: e.TxID(), Time: e.Time()}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return c, err
	}
	c.Bound = float64(runtime.GOMAXPROCS(0)) / c.Sequential.Seconds()
	return c, nil
}

// meter measures a phase's wall-clock time and the process's CPU time.
type meter struct {
	start time.Time
	cpu   time.Duration
}

func startMeter() meter { return meter{start: time.Now(), cpu: processCPU()} }

func (m meter) stop() (wall, cpu time.Duration) {
	return time.Since(m.start), processCPU() - m.cpu
}

// threadCPU is the CPU time (user and system) the calling thread has used
// (Linux's RUSAGE_THREAD); the caller locks its goroutine to the thread.
func threadCPU() time.Duration {
	const rusageThread = 1
	var ru syscall.Rusage
	if syscall.Getrusage(rusageThread, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawRead reads messages 1…last of GAVEL_LEDGER with an ordered consumer.
func rawRead(ctx context.Context, js jetstream.JetStream, last uint64) error {
	cons, err := js.OrderedConsumer(ctx, natslog.LedgerStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return err
	}
	defer it.Stop()
	for n := uint64(0); n < last; n++ {
		if _, err := it.Next(); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return errors.New("cancelled")
	}
	return nil
}

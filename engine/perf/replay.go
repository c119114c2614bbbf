package perf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
	// ReplayPerSec is `gavel audit replay`'s work: every entry
	// authenticated, every statement re-verified, every write set
	// re-derived, the Merkle tree rebuilt and every signature checked.
	ReplayPerSec float64 `json:"replay_per_sec"`
	Ratio        float64 `json:"replay_vs_raw"` // target ≥ 0.5
	Root         string  `json:"root"`
}

// RunReplay registers cfg.Entries statements into a fresh replica, stops
// it, then reads its ledger twice on the stopped folder's JetStream store:
// a raw ordered-consumer read, and the auditor's replay.
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

	start := time.Now()
	if err := rawRead(ctx, js, last); err != nil {
		return nil, err
	}
	rep.RawPerSec = float64(last) / time.Since(start).Seconds()

	replayer := audit.NewReplayer(func(raw []byte, f engine.Facts) (engine.Command, error) {
		return exec.VerifyStatement(raw, f.Time)
	})
	start = time.Now()
	read := func(fn func(engine.LedgerMsg) error) error { return reader.Range(ctx, 1, fn) }
	if err := replayer.AddAll(ctx, read, 0, nil); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	rep.ReplayPerSec = float64(last) / time.Since(start).Seconds()
	sum := replayer.Summary()
	if sum.Entries != last || len(sum.VoidEntries) != 0 {
		return nil, fmt.Errorf("replay checked %d of %d entries (%d void)", sum.Entries, last, len(sum.VoidEntries))
	}
	rep.Root, rep.Ratio = sum.Root, rep.ReplayPerSec/rep.RawPerSec
	return rep, nil
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

package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/nodes"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/state"
	"github.com/gavelhq/gavel/projections"
)

func init() {
	register("projections rebuild", "rebuild the node read models of a stopped replica from its log alone", runProjectionsRebuild)
}

// runProjectionsRebuild drops a stopped replica's node read models — nodes
// by status, removable nodes, trusted host data, the join policy in force —
// refolds them into its pebble state from nothing but the log, and prints
// them (what the replica answers once started again) with whether the ones
// it kept live were the same, byte for byte.
func runProjectionsRebuild(args []string, out, errOut io.Writer) int {
	fs := newFlags("projections rebuild", errOut)
	data := fs.String("data", "", "a stopped replica's data folder")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if *data == "" || len(pos) != 0 {
		return usageError(errOut, fs, "--data DIR is required")
	}
	if _, err := os.Stat(filepath.Join(*data, "nats")); err != nil {
		return failf(errOut, "%s has no ledger: %v", *data, err)
	}
	lock, err := replica.LockDir(*data, "gavel projections rebuild", false)
	if errors.Is(err, replica.ErrInUse) {
		return failf(errOut, "%v: stop it first", err)
	}
	if err != nil {
		return failf(errOut, "%v", err)
	}
	defer lock.Release()
	node, err := replicaNodeID(*data)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	emb, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: filepath.Join(*data, "nats"), Listen: "127.0.0.1:0"})
	if err != nil {
		return failf(errOut, "open the ledger in %s: %v", *data, err)
	}
	defer emb.Shutdown()
	nc, err := emb.ConnectReplica()
	if err != nil {
		return failf(errOut, "%v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	st, err := state.Open(filepath.Join(*data, "state"))
	if err != nil {
		return failf(errOut, "%v", err)
	}
	defer st.Close()
	st.SetProjector(nodes.Projector{})
	ctx, log := context.Background(), ledgerReader{r: natslog.NewReader(js)}
	// First the replica's own start: the read model as it was kept live,
	// brought to the log's end (a stale one is refolded).
	at, err := (nodes.Projector{}).Position(st.Model())
	if err != nil {
		return failf(errOut, "%v", err)
	}
	kept := at == st.Meta().Seqno
	if err := state.CatchUp(ctx, st, log); err != nil {
		return failf(errOut, "catch up with the ledger: %v", err)
	}
	live, err := modelSnapshot(st, node)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	// Then dropped and refolded from the first entry of the log.
	if err := st.DropModel(); err != nil {
		return failf(errOut, "%v", err)
	}
	last, err := log.r.LastSequence(ctx)
	if err != nil {
		return failf(errOut, "read the ledger: %v", err)
	}
	log.progress = newProgressMode(errOut, "rebuild", "entries", last, false)
	err = state.CatchUp(ctx, st, log)
	log.progress.done()
	if err != nil {
		return failf(errOut, "rebuild from the ledger: %v", err)
	}
	rebuilt, err := modelSnapshot(st, node)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	rep := rebuildReport{NodesSnapshot: rebuilt}
	if kept {
		same := live.ModelSHA256 == rebuilt.ModelSHA256
		rep.LiveModelSHA256, rep.RebuiltEqualsLive = live.ModelSHA256, &same
	}
	if code := printJSON(out, rep); code != exitOK {
		return code
	}
	if kept && !*rep.RebuiltEqualsLive {
		return failf(errOut, "the read model kept live (sha256 %s) differs from the log's fold (%s), which replaces it", live.ModelSHA256, rebuilt.ModelSHA256)
	}
	return exitOK
}

// rebuildReport is what `projections rebuild` prints: the rebuilt read
// model, and whether the one the replica kept was the same, byte for byte
// (when it reflected the state; a stale one is refolded, not compared).
type rebuildReport struct {
	projections.NodesSnapshot
	LiveModelSHA256   string `json:"live_model_sha256,omitempty"`
	RebuiltEqualsLive *bool  `json:"rebuilt_equals_live,omitempty"`
}

func modelSnapshot(st *state.Store, primary string) (projections.NodesSnapshot, error) {
	sn, err := st.Snapshot()
	if err != nil {
		return projections.NodesSnapshot{}, err
	}
	defer sn.Close()
	return projections.Nodes{Model: sn.Model(), Primary: primary}.Snapshot()
}

// replicaNodeID is the node id of the replica whose data folder is dir:
// the primary, as the live replica reports it.
func replicaNodeID(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, replica.NodeCertFile))
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "", fmt.Errorf("%s: no PEM certificate", replica.NodeCertFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", fmt.Errorf("%s: %w", replica.NodeCertFile, err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return "", fmt.Errorf("%s is not an Ed25519 certificate", replica.NodeCertFile)
	}
	return engine.NodeID(pub), nil
}

// ledgerReader is natslog's reader as state.LogReader; progress, when
// set, is told of every message read.
type ledgerReader struct {
	r        *natslog.Reader
	progress *progress
}

func (l ledgerReader) Range(ctx context.Context, from uint64, fn func(engine.LedgerMsg) error) error {
	if l.progress == nil {
		return l.r.Range(ctx, from, fn)
	}
	return l.r.Range(ctx, from, func(m engine.LedgerMsg) error {
		l.progress.set(m.Seq)
		return fn(m)
	})
}

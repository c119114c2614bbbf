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
// them: what the replica answers once started again.
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
	// Dropped, the read model is refolded from the first entry of the log
	// by the catch-up that also applies any tail the state lacks.
	if err := st.DropModel(); err != nil {
		return failf(errOut, "%v", err)
	}
	if err := state.CatchUp(context.Background(), st, ledgerReader{natslog.NewReader(js)}); err != nil {
		return failf(errOut, "rebuild from the ledger: %v", err)
	}
	sn, err := st.Snapshot()
	if err != nil {
		return failf(errOut, "%v", err)
	}
	defer sn.Close()
	snap, err := projections.Nodes{Model: sn.Model(), Primary: node}.Snapshot()
	if err != nil {
		return failf(errOut, "%v", err)
	}
	return printJSON(out, snap)
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

// ledgerReader is natslog's reader as state.LogReader.
type ledgerReader struct{ r *natslog.Reader }

func (l ledgerReader) Range(ctx context.Context, from uint64, fn func(engine.LedgerMsg) error) error {
	return l.r.Range(ctx, from, fn)
}

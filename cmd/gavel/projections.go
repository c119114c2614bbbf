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
	"github.com/gavelhq/gavel/projections"
)

func init() {
	register("projections rebuild", "rebuild the node read models of a stopped replica from its log alone", runProjectionsRebuild)
}

// runProjectionsRebuild folds a stopped replica's ledger into the node
// read models — nodes by status, removable nodes, trusted host data, the
// join policy in force — and prints them: what the live replica answers,
// derived from nothing but the log.
func runProjectionsRebuild(args []string, out, errOut io.Writer) int {
	fs := newFlags("projections rebuild", errOut)
	data := fs.String("data", "", "a stopped replica's data folder")
	fs.Bool("json", false, "when not on a terminal, report progress as JSON lines on stderr")
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
	f := nodes.NewFollower()
	reader := natslog.NewReader(js)
	last, err := reader.LastSequence(context.Background())
	if err != nil {
		return failf(errOut, "read the ledger: %v", err)
	}
	progress := newProgressMode(errOut, "rebuild", "entries", last, jsonFlagSet(fs))
	err = reader.Range(context.Background(), 1, func(m engine.LedgerMsg) error { f.Add(m); progress.set(m.Seq); return nil })
	progress.done()
	if err != nil {
		return failf(errOut, "read the ledger: %v", err)
	}
	snap, err := projections.Nodes{State: f.State, Fold: f.Fold, Primary: node}.Snapshot()
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

package replica_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
)

// testLogger logs to stderr when GAVEL_TEST_LOG is set, and nowhere
// otherwise.
func testLogger() *slog.Logger {
	if os.Getenv("GAVEL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openFirst starts the first replica of a replicable service: clustered,
// with the witness.
func openFirst(t *testing.T, dir string) *replica.Replica {
	t.Helper()
	return openFirstLogged(t, dir, testLogger())
}

func openFirstLogged(t *testing.T, dir string, logger *slog.Logger) *replica.Replica {
	t.Helper()
	seq := sequencer.DefaultConfig()
	seq.SignInterval = 10 * time.Millisecond
	r, err := replica.Open(context.Background(), replica.Config{DataDir: dir, NATSListen: "127.0.0.1:0", Sequencer: seq, Logger: logger,
		Cluster: &replica.ClusterConfig{Listen: "127.0.0.1:0", CodeVersion: "A", Witness: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// A lone clustered replica elects a meta leader with its witness, keeps
// its streams to itself (the witness holds none) and restarts on its
// route and store.
func TestClusterFirstReplica(t *testing.T) {
	dir := t.TempDir()
	r := openFirst(t, dir)
	ctx := context.Background()
	peers, err := natslog.StreamPeers(ctx, r.SequencerConn(), natslog.LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 1 || peers[0] != replica.ServerName(r.Node().ID) {
		t.Fatalf("ledger peers %v", peers)
	}
	if r.ClusterURL() == "" {
		t.Fatal("no cluster URL")
	}
	last := r.Store().Meta().Seqno
	r.Close()
	r = openFirst(t, dir)
	if got := r.Store().Meta().Seqno; got < last {
		t.Fatalf("after a restart the state is at %d, was %d", got, last)
	}
}

// A standalone store is never opened clustered (JetStream would delete
// its streams) and a clustered one never standalone (it would fork).
func TestClusterRefusesTheOtherModesStore(t *testing.T) {
	standalone := t.TempDir()
	r, err := open(t, standalone)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	_, err = replica.Open(context.Background(), replica.Config{DataDir: standalone, NATSListen: "127.0.0.1:0", Logger: testLogger(),
		Cluster: &replica.ClusterConfig{Listen: "127.0.0.1:0", CodeVersion: "A", Witness: true}})
	if !errors.Is(err, replica.ErrStandaloneStore) {
		t.Fatalf("a standalone store opened clustered: %v", err)
	}
	if _, err := os.Stat(filepath.Join(standalone, "cluster.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refusal wrote cluster.json: %v", err)
	}
	if r, err = open(t, standalone); err != nil {
		t.Fatalf("the standalone replica after the refusal: %v", err)
	}
	r.Close()

	clustered := t.TempDir()
	openFirst(t, clustered).Close()
	if _, err := open(t, clustered); !errors.Is(err, replica.ErrClusteredStore) {
		t.Fatalf("a clustered store opened standalone: %v", err)
	}
}

package replica_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/projections"
)

func open(t *testing.T, dir string) (*replica.Replica, error) {
	return replica.Open(context.Background(), replica.Config{DataDir: dir, NATSListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// A data folder whose service identity is not the one recorded at genesis
// is refused before anything is signed with it.
func TestRefusesAForeignIdentity(t *testing.T) {
	dir := t.TempDir()
	r, err := open(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // signs the tail
	r, err = open(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	last := r.Store().Meta().Seqno
	r.Close()
	other := t.TempDir()
	if _, err := replica.LoadOrCreateIdentity(other, time.Now()); err != nil {
		t.Fatal(err)
	}
	files := []string{replica.ServiceCertFile, "service_key.pem"}
	saved := map[string][]byte{}
	for _, f := range files {
		saved[f], _ = os.ReadFile(filepath.Join(dir, f))
		b, _ := os.ReadFile(filepath.Join(other, f))
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := open(t, dir); err == nil || !strings.Contains(err.Error(), "genesis") {
		t.Fatalf("opened with a foreign identity: %v", err)
	}
	// With its own identity back, the ledger is where it was: nothing was
	// signed with the foreign key.
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f), saved[f], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, err = open(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := r.Store().Meta().Seqno; got != last {
		t.Fatalf("the ledger moved from %d to %d", last, got)
	}
}

// The first member is created in the data folder when none is given, and
// the genesis entry makes it the only member.
func TestGenesisCreatesMember0(t *testing.T) {
	dir := t.TempDir()
	r, err := open(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ms, _, err := r.Members(context.Background(), projections.Page{})
	if err != nil || len(ms) != 1 || ms[0].Status != "Active" {
		t.Fatalf("members %v %v", ms, err)
	}
	for _, f := range []string{replica.Member0CertFile, replica.Member0KeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
}

// A committed round that cannot be applied stops the sequencer; the
// replica rebuilds its state from the log and starts a sequencer of a
// higher view, without a process restart, and nothing committed is lost.
func TestFailedApplyRestartsFromTheLog(t *testing.T) {
	var failed atomic.Bool
	cfg := replica.Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cfg.Sequencer.Knobs = &sequencer.TestingKnobs{ApplyFault: func(entries []*engine.Entry) error {
		// The first round with a signature entry (with genesis or after
		// it) is acked but not applied.
		if entries[len(entries)-1].Kind == engine.KindSignature && failed.CompareAndSwap(false, true) {
			return errors.New("injected: pebble write failed")
		}
		return nil
	}}
	r, err := replica.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	waitFor(t, func() bool {
		info, _ := r.Network(context.Background())
		return failed.Load() && info.Writable && r.Sequencer().View() == 2
	})
	// The signature that failed to apply is in the restarted state: the
	// genesis entry has a receipt, and the store equals the log.
	m := r.Store().Meta()
	if m.LastSignature < 2 {
		t.Fatalf("after the restart: %+v", m)
	}
	if _, err := r.Receipt(context.Background(), engine.TxID{View: 1, Seqno: 1}); err != nil {
		t.Fatal(err)
	}
	info, err := r.Network(context.Background())
	if err != nil || !info.Writable || info.WriteError != nil || info.CurrentView != 2 {
		t.Fatalf("network %+v %v", info, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 20 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

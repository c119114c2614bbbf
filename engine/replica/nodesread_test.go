package replica_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
)

// Node reads racing supervisor restarts (each closes and re-opens pebble)
// read one snapshot under the restart lock: each answers a whole view of
// one applied seqno, never going back, or is refused as Unavailable
// (SequencerRestarting) while the store is re-opened — never another
// error, never a read of a closed store.
func TestNodeReadsAcrossRestarts(t *testing.T) {
	const restarts = 4
	var faults atomic.Int32
	cfg := replica.Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cfg.Sequencer.SignEvery = 5
	cfg.Sequencer.Knobs = &sequencer.TestingKnobs{ApplyFault: func(entries []*engine.Entry) error {
		if entries[len(entries)-1].Kind == engine.KindSignature && faults.Load() < restarts {
			faults.Add(1)
			return errors.New("injected: pebble write failed")
		}
		return nil
	}}
	r, err := replica.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var served, refused atomic.Int64
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for {
				select {
				case <-done:
					return
				default:
				}
				snap, err := r.NodesSnapshot(context.Background())
				if err == nil {
					_, err = r.NodeInfo(context.Background(), r.Node().ID)
				}
				if err != nil {
					if e := engine.AsError(err); e.Kind != engine.KindUnavailable || e.Code != replica.CodeRestarting {
						t.Errorf("reader %d: %v", w, err)
						return
					}
					refused.Add(1)
					continue
				}
				served.Add(1)
				if snap.Seqno < last || len(snap.Nodes) != 1 || !snap.Nodes[0].Primary || len(snap.ModelSHA256) != 64 {
					t.Errorf("reader %d: snapshot at %d after %d: %+v", w, snap.Seqno, last, snap.Nodes)
					return
				}
				last = snap.Seqno
			}
		}()
	}
	for i := 0; faults.Load() < restarts || r.Sequencer().View() <= restarts; i++ {
		st, err := iss.Sign(fmt.Sprint("s", i), "text/plain", []byte("x"), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.RegisterStatement(context.Background(), st); err != nil && engine.KindOf(err) != engine.KindUnavailable {
			t.Fatal(err)
		}
		if i > 100000 {
			t.Fatalf("%d restarts after %d registrations", faults.Load(), i)
		}
	}
	close(done)
	wg.Wait()
	if served.Load() == 0 {
		t.Fatal("no read was served")
	}
	t.Logf("%d reads served, %d refused while restarting", served.Load(), refused.Load())
}

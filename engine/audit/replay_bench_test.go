package audit_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/audit"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
)

// benchLog is a recorded ledger of n distinct ES256 statements.
func benchLog(b *testing.B, n int) []msg {
	b.Helper()
	dir := b.TempDir()
	r, err := replica.Open(context.Background(), replica.Config{DataDir: dir, NATSListen: "127.0.0.1:0", Sequencer: sequencer.DefaultConfig(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 64 {
				st, err := iss.Sign(fmt.Sprintf("bench/%d", i), "application/octet-stream", make([]byte, 256), time.Now())
				if err == nil {
					_, err = r.RegisterStatement(context.Background(), st)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	for m := r.Store().Meta(); m.LastSignature != m.Seqno; m = r.Store().Meta() {
		time.Sleep(5 * time.Millisecond)
	}
	js, _ := jetstream.New(r.SequencerConn())
	var msgs []msg
	if err := natslog.NewReader(js).Range(context.Background(), 1, func(m engine.LedgerMsg) error {
		msgs = append(msgs, m)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return msgs
}

// BenchmarkReplay measures what each check of a replay costs per entry
// (ns/op is per entry): the figures docs/deviations.md quotes.
func BenchmarkReplay(b *testing.B) {
	msgs := benchLog(b, 2000)
	// The trusted nodes as of the end of the log.
	warm := audit.NewReplayer(verifyAt)
	trusted := engine.NewTrustedNodes()
	for _, m := range msgs {
		if err := warm.Add(m); err != nil {
			b.Fatal(err)
		}
		if e, err := engine.DecodeEntry(m.Data); err == nil {
			trusted.Observe(e.Writes)
		}
	}
	var statements []*engine.Entry
	for _, m := range msgs {
		if e, _ := engine.DecodeEntry(m.Data); e.Kind == engine.KindStatement {
			statements = append(statements, e)
		}
	}
	b.Run("authenticate", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := trusted.Authenticate(msgs[1+i%(len(msgs)-1)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := engine.DecodeEntry(msgs[i%len(msgs)].Data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("statement", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			e := statements[i%len(statements)]
			if _, err := verifyAt(e.Input, engine.Facts{TxID: e.TxID(), Time: e.Time()}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sequential", func(b *testing.B) {
		for b.Loop() {
			r := audit.NewReplayer(verifyAt)
			for _, m := range msgs {
				if err := r.Add(m); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/entry")
	})
	b.Run("addall", func(b *testing.B) {
		read := func(fn func(engine.LedgerMsg) error) error {
			for _, m := range msgs {
				if err := fn(m); err != nil {
					return err
				}
			}
			return nil
		}
		for b.Loop() {
			if err := audit.NewReplayer(verifyAt).AddAll(context.Background(), read, 0, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/entry")
	})
}

package audit_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/audit"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
)

type msg struct {
	seq     uint64
	subject string
	data    []byte
}

func verifyAt(raw []byte, f engine.Facts) (engine.Command, error) {
	return exec.VerifyStatement(raw, f.Time)
}

// recordLog runs a replica, registers statements, and returns its log.
func recordLog(t *testing.T) ([]msg, engine.Digest) {
	cfg := sequencer.DefaultConfig()
	cfg.SignEvery = 7
	r, err := replica.Open(context.Background(), replica.Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", Sequencer: cfg,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	iss, err := issuer.New("ES384", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		st, err := iss.Sign(fmt.Sprintf("audit/%d", i), "text/plain", []byte("x"), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.RegisterStatement(context.Background(), st); err != nil {
			t.Fatal(err)
		}
	}
	js, _ := jetstream.New(r.SequencerConn())
	log, err := replica.NewLedgerLog(r.SequencerConn(), js)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []msg
	if err := log.Range(context.Background(), 1, func(seq uint64, subject string, data []byte) error {
		msgs = append(msgs, msg{seq, subject, data})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return msgs, r.Store().Tree().Root()
}

func replay(msgs []msg) (audit.Summary, error) {
	r := audit.NewReplayer(verifyAt)
	for _, m := range msgs {
		if err := r.Add(m.seq, m.subject, m.data); err != nil {
			return r.Summary(), err
		}
	}
	return r.Summary(), nil
}

func TestReplayVerifiesAnHonestLog(t *testing.T) {
	msgs, root := recordLog(t)
	sum, err := replay(msgs)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Root != hex.EncodeToString(root[:]) || sum.Entries != uint64(len(msgs)) || sum.Statements != 30 || sum.Signatures < 4 {
		t.Fatalf("summary %+v, replica root %x", sum, root)
	}
}

// edit decodes entry i, changes it, and re-encodes it (re-sealing the
// digest when asked, as a forger who knows the format would).
func edit(t *testing.T, msgs []msg, i int, reseal bool, change func(*engine.Entry)) []msg {
	out := append([]msg(nil), msgs...)
	e, err := engine.DecodeEntry(out[i].data)
	if err != nil {
		t.Fatal(err)
	}
	change(e)
	if reseal {
		e.Seal()
	}
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out[i].data = b
	return out
}

func TestReplayNamesTheFirstBadTxID(t *testing.T) {
	msgs, _ := recordLog(t)
	kindAt := func(kind engine.EntryKind) int {
		for i, m := range msgs {
			if strings.HasSuffix(m.subject, "."+string(kind)) && i > 2 {
				return i
			}
		}
		t.Fatalf("no %s entry", kind)
		return 0
	}
	st, sig := kindAt(engine.KindStatement), kindAt(engine.KindSignature)
	txidOf := func(i int) string {
		e, _ := engine.DecodeEntry(msgs[i].data)
		return e.TxID().String()
	}
	nextSig := func(i int) int {
		for j := i + 1; j < len(msgs); j++ {
			if strings.HasSuffix(msgs[j].subject, ".signature") {
				return j
			}
		}
		t.Fatal("no later signature")
		return 0
	}
	for _, tc := range []struct {
		name   string
		msgs   []msg
		bad    string
		reason string
	}{
		{"forged statement bytes", edit(t, msgs, st, true, func(e *engine.Entry) { e.Input[len(e.Input)-3] ^= 1 }), txidOf(st), "statement does not verify"},
		{"write set changed, digest kept", edit(t, msgs, st, false, func(e *engine.Entry) { e.Writes[0].Value = []byte("x") }), "seq " + fmt.Sprint(msgs[st].seq), "WriteSetDigestMismatch"},
		{"write set changed and resealed", edit(t, msgs, st, true, func(e *engine.Entry) { e.Writes[0].Value = []byte("x") }), txidOf(st), "write set differs"},
		{"signature bytes changed", edit(t, msgs, sig, true, func(e *engine.Entry) { e.Writes[0].Value[len(e.Writes[0].Value)-1] ^= 1 }), txidOf(sig), "signature"},
		{"nonce changed: caught at the next signature", edit(t, msgs, st, true, func(e *engine.Entry) { e.Nonce[0] ^= 1 }), txidOf(nextSig(st)), "signature over root"},
		{"entry missing", append(append([]msg(nil), msgs[:st]...), msgs[st+1:]...), "", "expected seqno"},
		{"time goes back", edit(t, msgs, st, true, func(e *engine.Entry) { e.TimeMillis = 1 }), txidOf(st), "time goes back"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := replay(tc.msgs)
			var div *audit.Divergence
			if !errors.As(err, &div) {
				t.Fatalf("replay passed a tampered log: %v", err)
			}
			if (tc.bad != "" && div.TxID != tc.bad) || !strings.Contains(div.Reason, tc.reason) {
				t.Fatalf("divergence %v; want at %s with %q", div, tc.bad, tc.reason)
			}
		})
	}
}

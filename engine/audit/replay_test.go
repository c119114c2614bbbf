package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/audit"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/merkle"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
)

type msg = engine.LedgerMsg

func verifyAt(raw []byte, f engine.Facts) (engine.Command, error) {
	return exec.VerifyStatement(raw, f.Time)
}

// recordLog runs a replica, registers statements, and returns its log
// and its node key.
func recordLog(t *testing.T) ([]msg, engine.Digest) {
	msgs, root, _ := recordLogWithNode(t)
	return msgs, root
}

func recordLogWithNode(t *testing.T) ([]msg, engine.Digest, *engine.NodeSigner) {
	cfg := sequencer.DefaultConfig()
	cfg.SignEvery = 7
	dir := t.TempDir()
	r, err := replica.Open(context.Background(), replica.Config{DataDir: dir, NATSListen: "127.0.0.1:0", Sequencer: cfg,
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
	var msgs []msg
	if err := natslog.NewReader(js).Range(context.Background(), 1, func(m engine.LedgerMsg) error {
		msgs = append(msgs, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	node, err := replica.LoadOrCreateNodeIdentity(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return msgs, r.Store().Tree().Root(), node.Signer()
}

// replay replays msgs one by one with Add, and again with AddAll's
// workers running ahead: both must reach the same summary and the same
// verdict, whatever the log holds.
func replay(t *testing.T, msgs []msg) (audit.Summary, error) {
	t.Helper()
	r := audit.NewReplayer(verifyAt)
	var err error
	for _, m := range msgs {
		if err = r.Add(m); err != nil {
			break
		}
	}
	sum := r.Summary()

	p := audit.NewReplayer(verifyAt)
	var seen []uint64
	read := func(fn func(engine.LedgerMsg) error) error {
		for _, m := range msgs {
			if err := fn(m); err != nil {
				return err
			}
		}
		return nil
	}
	perr := p.AddAll(context.Background(), read, 4, func(m engine.LedgerMsg) { seen = append(seen, m.Seq) })
	if fmt.Sprint(err) != fmt.Sprint(perr) || fmt.Sprintf("%+v", sum) != fmt.Sprintf("%+v", p.Summary()) {
		t.Fatalf("AddAll disagrees with Add:\n add:    %v %+v\n addall: %v %+v", err, sum, perr, p.Summary())
	}
	if want := int(sum.Entries); len(seen) != want {
		t.Fatalf("AddAll reported %d added messages, Add added %d", len(seen), want)
	}
	return sum, err
}

func TestReplayVerifiesAnHonestLog(t *testing.T) {
	msgs, root := recordLog(t)
	sum, err := replay(t, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Root != hex.EncodeToString(root[:]) || sum.Entries != uint64(len(msgs)) || sum.Statements != 30 || sum.Signatures < 4 {
		t.Fatalf("summary %+v, replica root %x", sum, root)
	}
}

// edit decodes entry i, changes it, and re-encodes it (re-sealing the
// digest when asked, as a forger who knows the format would) and signs it
// with node (a forger holding a trusted node's key), if given.
func edit(t *testing.T, msgs []msg, i int, reseal bool, node *engine.NodeSigner, change func(*engine.Entry)) []msg {
	out := append([]msg(nil), msgs...)
	e, err := engine.DecodeEntry(out[i].Data)
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
	out[i].Data = b
	if node != nil {
		out[i].Auth = node.Sign(out[i].Seq, out[i].Subject, b)
	}
	return out
}

// A trusted node's key signs a dishonest entry: the replay's re-execution
// names it.
func TestReplayNamesTheFirstBadTxID(t *testing.T) {
	msgs, _, node := recordLogWithNode(t)
	kindAt := func(kind engine.EntryKind) int {
		for i, m := range msgs {
			if strings.HasSuffix(m.Subject, "."+string(kind)) && i > 2 {
				return i
			}
		}
		t.Fatalf("no %s entry", kind)
		return 0
	}
	st, sig := kindAt(engine.KindStatement), kindAt(engine.KindSignature)
	txidOf := func(i int) string {
		e, _ := engine.DecodeEntry(msgs[i].Data)
		return e.TxID().String()
	}
	nextSig := func(i int) int {
		for j := i + 1; j < len(msgs); j++ {
			if strings.HasSuffix(msgs[j].Subject, ".signature") {
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
		{"forged statement bytes", edit(t, msgs, st, true, node, func(e *engine.Entry) { e.Input[len(e.Input)-3] ^= 1 }), txidOf(st), "statement does not verify"},
		{"write set changed and resealed", edit(t, msgs, st, true, node, func(e *engine.Entry) { e.Writes[0].Value = []byte("x") }), txidOf(st), "write set differs"},
		{"signature bytes changed", edit(t, msgs, sig, true, node, func(e *engine.Entry) { e.Writes[0].Value[len(e.Writes[0].Value)-1] ^= 1 }), txidOf(sig), "signature"},
		{"nonce changed: caught at the next signature", edit(t, msgs, st, true, node, func(e *engine.Entry) { e.Nonce[0] ^= 1 }), txidOf(nextSig(st)), "signature over root"},
		{"entry missing", append(append([]msg(nil), msgs[:st]...), msgs[st+1:]...), "", "expected seqno"},
		{"time goes back", edit(t, msgs, st, true, node, func(e *engine.Entry) { e.TimeMillis = 1 }), txidOf(st), "time goes back"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := replay(t, tc.msgs)
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

// Foreign messages at the end of an honest log — garbage, a genuine entry
// copied to another position, an entry signed by an unknown key — are
// listed as void entries, folded as the void leaf, and are no divergence.
func TestReplayListsVoidEntries(t *testing.T) {
	msgs, _ := recordLog(t)
	n := uint64(len(msgs))
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	forged := msgs[len(msgs)-2] // a genuine entry's bytes, re-signed by a stranger
	forged.Seq = n + 3
	forged.Node, forged.Auth = engine.NewNodeSigner(stranger).ID(), engine.NewNodeSigner(stranger).Sign(n+3, forged.Subject, forged.Data)
	replayed := msgs[4]
	replayed.Seq = n + 2
	all := append(slices.Clone(msgs), msg{Seq: n + 1, Subject: "gavel.ledger.statement", Data: []byte("garbage")}, replayed, forged)
	before, err := replay(t, msgs)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := replay(t, all)
	if err != nil {
		t.Fatal(err)
	}
	tree := merkle.New()
	tree.Append(engine.Digest{}, nil)
	for _, m := range msgs {
		e, _ := engine.DecodeEntry(m.Data)
		tree.Append(e.Leaf(), nil)
	}
	for range 3 {
		tree.Append(engine.VoidLeaf, nil)
	}
	root := tree.Root()
	if sum.Root != hex.EncodeToString(root[:]) || sum.Entries != n+3 || sum.Unsigned != before.Unsigned+3 || sum.LastTxID != before.LastTxID || len(sum.VoidEntries) != 3 {
		t.Fatalf("summary %+v", sum)
	}
	for i, want := range []string{"no Gavel-Node", "does not verify", "not a trusted service node"} {
		if v := sum.VoidEntries[i]; v.Seqno != n+1+uint64(i) || !strings.Contains(v.Reason, want) {
			t.Fatalf("void %d: %+v, want %q", i, v, want)
		}
	}
}

// Given the service certificate, the replay refuses a ledger whose genesis
// records another.
func TestReplayChecksTheGivenServiceCertificate(t *testing.T) {
	msgs, _ := recordLog(t)
	other, err := replica.LoadOrCreateIdentity(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := audit.NewReplayer(verifyAt)
	if err := r.ExpectServiceCertificate(other.CertPEM); err != nil {
		t.Fatal(err)
	}
	var div *audit.Divergence
	if err := r.Add(msgs[0]); !errors.As(err, &div) || !strings.Contains(div.Reason, "another service certificate") {
		t.Fatalf("genesis with another service certificate: %v", err)
	}
}

// A ledger whose first message is not an authenticated genesis entry
// authenticates nothing: the replay refuses it at seq 1.
func TestReplayRefusesAnUnauthenticatedGenesis(t *testing.T) {
	msgs, _ := recordLog(t)
	msgs[0].Auth = ""
	_, err := replay(t, msgs)
	var div *audit.Divergence
	if !errors.As(err, &div) || div.TxID != "seq 1" || !strings.Contains(div.Reason, "authenticated genesis") {
		t.Fatalf("replay of a ledger without an authenticated genesis: %v", err)
	}
}

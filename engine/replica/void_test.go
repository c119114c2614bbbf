package replica_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/audit"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/receipt"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/internal/syncbuf"
	"github.com/gavelhq/gavel/projections"
)

// Messages that are not authenticated entries, published straight into the
// ledger stream of a live replica with the replica's own NATS rights —
// garbage, a genuine entry copied to another position, and a forged entry
// that decodes and adds a member — are void entries: the replica keeps
// serving writes after each, applies none of them, counts them, catches up
// past them on restart and on a pebble rebuild to the same root; the
// auditor lists them and verifies the rest; every acknowledged write's
// receipt verifies, and a void's receipt is a typed refusal.
func TestForeignMessagesInTheLedgerAreVoid(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var logged syncbuf.Buffer
	r, err := replica.Open(ctx, replica.Config{DataDir: dir, NATSListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { r.Close() }()
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var acked []engine.TxID
	register := func(i int) {
		t.Helper()
		st, err := iss.Sign(fmt.Sprintf("void/%d", i), "text/plain", []byte("x"), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.RegisterStatement(ctx, st)
		if err != nil {
			t.Fatalf("registration %d after foreign messages: %v", i, err)
		}
		tx, err := engine.ParseTxID(txidOf(t, out))
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, tx)
	}
	js, err := jetstream.New(r.SequencerConn())
	if err != nil {
		t.Fatal(err)
	}
	publish := func(m *nats.Msg) uint64 {
		t.Helper()
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	register(0)
	register(1)

	var voids []uint64
	// Garbage.
	voids = append(voids, publish(&nats.Msg{Subject: "gavel.ledger.statement", Data: []byte("garbage")}))
	register(2)
	// A genuine entry, with its headers, at another position.
	genuine, err := natslog.NewReader(js).GetMsg(ctx, acked[0].Seqno)
	if err != nil {
		t.Fatal(err)
	}
	voids = append(voids, publish(&nats.Msg{Subject: genuine.Subject, Data: genuine.Data,
		Header: nats.Header{engine.HeaderNode: {genuine.Node}, engine.HeaderAuth: {genuine.Auth}}}))
	register(3)
	// A forged entry that decodes, claims its place and the replica's node,
	// and adds a member; signed by a key nobody trusts.
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	stranger := engine.NewNodeSigner(strangerKey)
	last := r.Store().Meta()
	forged := &engine.Entry{Kind: engine.KindGovProposal, View: last.View, Seqno: last.Seqno + 1, TimeMillis: last.TimeMillis,
		Writes: engine.WriteSet{{Table: constitution.TableMembers, Key: "intruder", Value: []byte(`{"status":"Active","cert":""}`)}}}
	forged.Seal()
	data, err := forged.Encode()
	if err != nil {
		t.Fatal(err)
	}
	voids = append(voids, publish(&nats.Msg{Subject: forged.Subject(), Data: data, Header: nats.Header{
		engine.HeaderNode: {r.Node().ID}, engine.HeaderAuth: {stranger.Sign(forged.Seqno, forged.Subject(), data)}}}))
	if voids[2] != forged.Seqno {
		t.Fatalf("the forged entry landed at %d, not %d", voids[2], forged.Seqno)
	}
	register(4)
	register(5)

	checkState := func(when string) {
		t.Helper()
		n, lastVoid := r.Voids()
		if n != 3 || lastVoid.Seqno != voids[2] || !strings.Contains(lastVoid.Reason, "does not verify") {
			t.Fatalf("%s: voids %d, last %+v", when, n, lastVoid)
		}
		ms, _, err := r.Members(ctx, projections.Page{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.MemberID == "intruder" {
				t.Fatalf("%s: the forged member was applied", when)
			}
		}
		for i, seq := range voids {
			rec, ok, _ := r.Store().Leaf(seq)
			if !ok || rec.Kind != engine.KindVoid {
				t.Fatalf("%s: seqno %d is %+v, not void", when, seq, rec)
			}
			if acked[i+2].Seqno <= seq {
				t.Fatalf("%s: write %v not after the void at %d", when, acked[i+2], seq)
			}
		}
	}
	checkState("live")
	for _, seq := range voids {
		if want := fmt.Sprintf("level=ERROR msg=\"void entry: the ledger holds a message that is not an authenticated entry; it is not applied\" component=state seq=%d", seq); !strings.Contains(logged.String(), want) {
			t.Fatalf("no error logged for the void at %d: %s", seq, logged.String())
		}
	}
	root := r.Store().Tree().Root()

	// Restart: catch up past the voids, same state; then a rebuild of pebble.
	r.Close()
	if r, err = open(t, dir); err != nil {
		t.Fatalf("restart over void entries: %v", err)
	}
	checkState("restarted")
	root = r.Store().Tree().Root() // the clean stop signed the tail
	r.Close()
	if err := os.RemoveAll(filepath.Join(dir, "state")); err != nil {
		t.Fatal(err)
	}
	if r, err = open(t, dir); err != nil {
		t.Fatalf("rebuild over void entries: %v", err)
	}
	checkState("rebuilt")
	if got := r.Store().Tree().Root(); got != root {
		t.Fatalf("rebuilt root %x, before %x", got, root)
	}
	register(6)

	// Every acknowledged write's receipt verifies; a void has none.
	r.Close()
	if r, err = open(t, dir); err != nil {
		t.Fatal(err)
	}
	for _, tx := range acked {
		rcpt, err := r.Receipt(ctx, tx)
		if err != nil {
			t.Fatalf("receipt %v: %v", tx, err)
		}
		if _, err := receipt.Verify(rcpt, r.Identity().Cert.PublicKey); err != nil {
			t.Fatalf("receipt %v: %v", tx, err)
		}
	}
	rec, _, _ := r.Store().Leaf(voids[0])
	_, err = r.Receipt(ctx, engine.TxID{View: rec.View, Seqno: voids[0]})
	if e := engine.AsError(err); e.Code != "TransactionVoid" || e.Kind != engine.KindNotFound {
		t.Fatalf("receipt of a void entry: %v", err)
	}

	// The auditor re-derives the same root and lists the voids.
	rp := audit.NewReplayer(func(raw []byte, f engine.Facts) (engine.Command, error) { return exec.VerifyStatement(raw, f.Time) })
	if err := rp.ExpectServiceCertificate(r.Identity().CertPEM); err != nil {
		t.Fatal(err)
	}
	js, _ = jetstream.New(r.SequencerConn())
	if err := natslog.NewReader(js).Range(ctx, 1, rp.Add); err != nil {
		t.Fatalf("replay: %v", err)
	}
	sum := rp.Summary()
	wantRoot := r.Store().Tree().Root()
	if sum.Root != fmt.Sprintf("%x", wantRoot[:]) || len(sum.VoidEntries) != 3 || sum.Statements != uint64(len(acked)) {
		t.Fatalf("replay %+v, root %x", sum, wantRoot)
	}
	for i, v := range sum.VoidEntries {
		if v.Seqno != voids[i] {
			t.Fatalf("void %d at %d, want %d", i, v.Seqno, voids[i])
		}
	}
}

// A replica whose node key is not the one the ledger trusts refuses to
// start: every entry it wrote would be void to every other reader.
func TestRefusesAnUntrustedNodeKey(t *testing.T) {
	dir := t.TempDir()
	r, err := open(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	for _, f := range []string{replica.NodeCertFile, "node_privk.pem"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := open(t, dir); err == nil || !strings.Contains(err.Error(), "not a Trusted service node") {
		t.Fatalf("opened with a new node key: %v", err)
	}
}

// txidOf reads the txid of a registration's answer, {"txid": "v.s"}.
func txidOf(t *testing.T, out []byte) string {
	t.Helper()
	var a struct {
		TxID string `json:"txid"`
	}
	if err := json.Unmarshal(out, &a); err != nil || a.TxID == "" {
		t.Fatalf("answer %s: %v", out, err)
	}
	return a.TxID
}

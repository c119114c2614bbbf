package sequencer_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/engine/state"
)

// A message that is not an authenticated entry lands behind the
// sequencer's back: its next append is refused, it catches up through the
// void entry and commits the round after it; a forged write set in such a
// message is not applied, so re-execution does not see it.
func TestSequencerContinuesAfterAVoidEntry(t *testing.T) {
	cfg := sequencer.DefaultConfig()
	cfg.SignInterval = time.Hour
	h := start(t, cfg, 1)
	ctx := context.Background()
	if _, err := h.seq.Submit(ctx, put{"a", "1"}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(h.nc)
	if err != nil {
		t.Fatal(err)
	}
	garbage, err := js.Publish(ctx, "gavel.ledger.statement", []byte("garbage"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.seq.Submit(ctx, put{"b", "2"})
	if err != nil || out.TxID.Seqno != garbage.Sequence+1 {
		t.Fatalf("after a void at %d: %v %v", garbage.Sequence, out, err)
	}
	// A forged entry that decodes and takes key c, signed by a stranger.
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	stranger := engine.NewNodeSigner(key)
	m := h.store.Meta()
	e := &engine.Entry{Kind: engine.KindStatement, View: 1, Seqno: m.Seqno + 1, TimeMillis: m.TimeMillis,
		Writes: engine.WriteSet{{Table: "test", Key: "c", Value: []byte("forged")}}}
	e.Seal()
	data, _ := e.Encode()
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: e.Subject(), Data: data, Header: nats.Header{
		engine.HeaderNode: {stranger.ID()}, engine.HeaderAuth: {stranger.Sign(e.Seqno, e.Subject(), data)}}}); err != nil {
		t.Fatal(err)
	}
	out, err = h.seq.Submit(ctx, put{"c", "3"})
	if err != nil || out.TxID.Seqno != e.Seqno+1 {
		t.Fatalf("after a forged entry at %d: %v %v", e.Seqno, out, err)
	}
	if v, _, _ := h.store.Get("test", "c"); string(v) != "3" {
		t.Fatalf("c = %q", v)
	}
	if n, last := h.store.Voids(); n != 2 || last.Seqno != e.Seqno {
		t.Fatalf("voids %d, last %+v", n, last)
	}
	fresh, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := state.CatchUp(ctx, fresh, h.log); err != nil {
		t.Fatal(err)
	}
	if fresh.Meta() != h.store.Meta() || fresh.Tree().Root() != h.store.Tree().Root() {
		t.Fatalf("rebuilt %+v %x, live %+v %x", fresh.Meta(), fresh.Tree().Root(), h.store.Meta(), h.store.Tree().Root())
	}
}

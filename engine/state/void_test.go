package state

import (
	"context"
	"crypto/ed25519"
	"strings"
	"syscall"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/merkle"
)

// next is an honest entry after the log's last one.
func next(log sliceLog, key string, writes ...engine.Write) *engine.Entry {
	seq := uint64(len(log)) + 1
	e := &engine.Entry{Kind: engine.KindStatement, View: 1, Seqno: seq, TimeMillis: int64(5000 + seq),
		Writes: append(engine.WriteSet{{Table: "t", Key: key, Value: []byte("v")}}, writes...)}
	e.Nonce[0] = byte(seq)
	e.Seal()
	return e
}

// Messages that are not authenticated entries are folded as void entries
// with the void leaf; catch-up goes on after them, applies nothing of
// them, counts them, and a second catch-up from the store's own trusted
// nodes gives the same state.
func TestCatchUpFoldsVoidEntries(t *testing.T) {
	entries, log := makeEntries(t, 20)
	leaves := make([]engine.Digest, 0, 40)
	for _, e := range entries {
		leaves = append(leaves, e.Leaf())
	}
	honest := func(key string, writes ...engine.Write) {
		e := next(log, key, writes...)
		log = append(log, signed(t, testNode, e))
		leaves = append(leaves, e.Leaf())
	}
	void := func(m engine.LedgerMsg) {
		m.Seq = uint64(len(log)) + 1
		log = append(log, m)
		leaves = append(leaves, engine.VoidLeaf)
	}
	_, strangerKey, _ := ed25519.GenerateKey(nil)
	stranger := engine.NewNodeSigner(strangerKey)
	member := engine.Write{Table: "gov.members", Key: "intruder", Value: []byte(`{"status":"Active"}`)}

	void(engine.LedgerMsg{Subject: "gavel.ledger.statement", Data: []byte("garbage")}) // 21
	replayed := log[4]                                                                 // 22: a genuine entry at another position
	void(replayed)
	honest("after-void") // 23
	forged := next(log, "forged", member, engine.ServiceNodeRecord(stranger.Public(), nil).Write())
	void(signed(t, stranger, forged)) // 24: decodes, signed by a node nobody trusted
	relabelled := next(log, "relabelled")
	m := signed(t, testNode, relabelled)
	m.Subject = "gavel.ledger.proposal"
	void(m) // 25: the subject is bound
	honest("k2")
	// Retiring the node: its later entries are no longer authenticated.
	retired := engine.ServiceNodeRecord(testNode.Public(), nil)
	retired.Status = "Retired"
	honest("retire", retired.Write()) // 27
	void(signed(t, testNode, next(log, "late")))

	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	half := log[:23]
	if err := CatchUp(context.Background(), s, half); err != nil {
		t.Fatal(err)
	}
	if err := CatchUp(context.Background(), s, log); err != nil {
		t.Fatal(err)
	}
	tree := merkle.New()
	tree.Append(engine.Digest{}, nil)
	for _, l := range leaves {
		tree.Append(l, nil)
	}
	meta := s.Meta()
	if meta.Seqno != uint64(len(log)) || s.Tree().Root() != tree.Root() {
		t.Fatalf("caught up to %d of %d, root %x want %x", meta.Seqno, len(log), s.Tree().Root(), tree.Root())
	}
	n, last := s.Voids()
	if n != 5 || last.Seqno != 28 || !strings.Contains(last.Reason, "not a trusted service node") {
		t.Fatalf("voids %d, last %+v", n, last)
	}
	for _, key := range []string{"after-void", "k2", "retire"} {
		if _, ok, _ := s.Get("t", key); !ok {
			t.Fatalf("honest write %s after the voids is missing", key)
		}
	}
	for _, key := range []string{"forged", "relabelled", "late"} {
		if _, ok, _ := s.Get("t", key); ok {
			t.Fatalf("void entry's write %s was applied", key)
		}
	}
	if _, ok, _ := s.Get("gov.members", "intruder"); ok {
		t.Fatal("a forged governance write set was applied")
	}
	for _, seq := range []uint64{21, 22, 24, 25, 28} {
		rec, ok, _ := s.Leaf(seq)
		if !ok || rec.Kind != engine.KindVoid || rec.VoidReason == "" || rec.View != 1 {
			t.Fatalf("leaf %d: %+v", seq, rec)
		}
	}
}

// A log whose first message is not a genesis entry authenticated by the
// node it records trusts nobody: everything is void, nothing applied.
func TestCatchUpWithoutAnAuthenticatedGenesis(t *testing.T) {
	entries, log := makeEntries(t, 5)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	log[0] = signed(t, engine.NewNodeSigner(otherKey), entries[0]) // genesis records testNode, signed by another
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := CatchUp(context.Background(), s, log); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Voids(); n != 5 || s.Meta().Seqno != 5 {
		t.Fatalf("%d voids at %+v", n, s.Meta())
	}
	if _, ok, _ := s.Get("t", "k001"); ok {
		t.Fatal("an entry after an unauthenticated genesis was applied")
	}
	if _, last := s.Voids(); !strings.Contains(last.Reason, engine.ErrUnknownNode.Error()) {
		t.Fatalf("last void: %q", last.Reason)
	}
}

// BenchmarkCatchUp is a rebuild's cost per entry, authentication
// included: wall time (signatures are checked on every core) and the
// process's CPU time.
func BenchmarkCatchUp(b *testing.B) {
	_, log := makeEntries(b, 4096)
	var cpu int64
	for b.Loop() {
		b.StopTimer()
		s, err := Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		c0 := cpuTime()
		b.StartTimer()
		if err := CatchUp(context.Background(), s, log); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += cpuTime() - c0
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(log)), "ns/entry")
	b.ReportMetric(float64(cpu)/float64(b.N*len(log)), "cpu-ns/entry")
}

func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

package state

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/merkle"
)

// sliceLog is a log held in memory: l[i] sits at sequence i+1.
type sliceLog []engine.LedgerMsg

func (l sliceLog) Range(ctx context.Context, from uint64, fn func(engine.LedgerMsg) error) error {
	for seq := from; seq <= uint64(len(l)); seq++ {
		if err := fn(l[seq-1]); err != nil {
			return err
		}
	}
	return nil
}

// testNode is the replica that writes the test logs.
var testNode = engine.NewNodeSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))

// signed is e at its own sequence, authenticated by node.
func signed(t testing.TB, node *engine.NodeSigner, e *engine.Entry) engine.LedgerMsg {
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return engine.LedgerMsg{Seq: e.Seqno, Subject: e.Subject(), Data: b, Node: node.ID(), Auth: node.Sign(e.Seqno, e.Subject(), b)}
}

// makeEntries is a log of n entries: a genesis that records testNode as
// the service's node, then statements and, every tenth, a signature.
func makeEntries(t testing.TB, n int) ([]*engine.Entry, sliceLog) {
	var entries []*engine.Entry
	var log sliceLog
	for i := 1; i <= n; i++ {
		e := &engine.Entry{Kind: engine.KindStatement, View: 1, Seqno: uint64(i), TimeMillis: int64(1000 + i),
			Writes: engine.WriteSet{{Table: "t", Key: fmt.Sprintf("k%03d", i%7), Value: []byte(fmt.Sprint(i))}}}
		if i == 1 {
			e.Kind = engine.KindGenesis
			e.Writes = append(e.Writes, engine.ServiceNodeRecord(testNode.Public(), nil).Write())
		}
		if i%10 == 0 {
			e.Kind = engine.KindSignature
			e.Writes = engine.WriteSet{{Table: engine.TableSignatures, Value: []byte{byte(i)}}}
		}
		if i%3 == 0 {
			e.Writes = append(e.Writes, engine.Write{Table: "t", Key: fmt.Sprintf("k%03d", (i+1)%7), Delete: true})
		}
		e.Nonce[0], e.ClaimsDigest[1] = byte(i), byte(i*3)
		e.Seal()
		entries = append(entries, e)
		log = append(log, signed(t, testNode, e))
	}
	return entries, log
}

// naiveRoot folds the CCF tree (zero leaf first) with the in-memory tree.
func naiveRoot(entries []*engine.Entry) engine.Digest {
	tr := merkle.New()
	tr.Append(engine.Digest{}, nil)
	for _, e := range entries {
		tr.Append(e.Leaf(), nil)
	}
	return tr.Root()
}

func TestApplyCatchUpAndReopen(t *testing.T) {
	entries, log := makeEntries(t, 95)
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Apply in uneven runs, then catch up the rest from the log.
	if err := s.Apply(entries[:1]); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(entries[1:40]); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(entries[41:50]); err == nil {
		t.Fatal("a gap was applied")
	}
	if err := CatchUp(context.Background(), s, log); err != nil {
		t.Fatal(err)
	}
	m := s.Meta()
	if m.Seqno != 95 || m.LastSignature != 90 || m.View != 1 {
		t.Fatalf("meta %+v", m)
	}
	want := naiveRoot(entries)
	if got := s.Tree().Root(); got != want {
		t.Fatalf("root %x, want %x", got, want)
	}
	// Table state equals the fold of the write sets.
	fold := map[string]string{}
	for _, e := range entries {
		for _, w := range e.Writes {
			if w.Table != "t" {
				continue
			}
			if w.Delete {
				delete(fold, w.Key)
			} else {
				fold[w.Key] = string(w.Value)
			}
		}
	}
	got := map[string]string{}
	if err := s.Range("t", func(k string, v []byte) bool { got[k] = string(v); return true }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(fold) {
		t.Fatalf("table %v, fold %v", got, fold)
	}
	s.Close()

	// Reopen: the tree's border is restored from the stored nodes.
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Meta() != m || s.Tree().Root() != want {
		t.Fatalf("reopened at %+v root %x", s.Meta(), s.Tree().Root())
	}
	for seq := uint64(1); seq <= 95; seq++ {
		sig, ok, err := s.SignatureCovering(seq)
		if err != nil {
			t.Fatal(err)
		}
		if seq >= 90 {
			if ok {
				t.Fatalf("seqno %d covered by %d", seq, sig.Seqno)
			}
			continue
		}
		if !ok || sig.Seqno != (seq/10+1)*10 {
			t.Fatalf("seqno %d: covering signature %d %v", seq, sig.Seqno, ok)
		}
		path, err := s.InclusionPath(seq, sig.Seqno)
		if err != nil {
			t.Fatal(err)
		}
		root, err := s.RootAt(sig.Seqno)
		if err != nil {
			t.Fatal(err)
		}
		if merkle.ComputeRoot(entries[seq-1].Leaf(), path) != root || root != naiveRoot(entries[:sig.Seqno-1]) {
			t.Fatalf("seqno %d: path does not lead to the signed root", seq)
		}
		rec, ok, _ := s.Leaf(seq)
		if !ok || rec.Nonce != entries[seq-1].Nonce || rec.WriteSetDigest != entries[seq-1].WriteSetDigest {
			t.Fatalf("leaf record %d: %+v", seq, rec)
		}
	}
}

// TestStatementByClaimsDigest: every statement is found by its claims
// digest, a signature or genesis entry is not, and the latest
// registration of a digest wins.
func TestStatementByClaimsDigest(t *testing.T) {
	entries, _ := makeEntries(t, 30)
	again := &engine.Entry{Kind: engine.KindStatement, View: 1, Seqno: 31, TimeMillis: 2000, ClaimsDigest: entries[4].ClaimsDigest}
	again.Seal()
	entries = append(entries, again)
	s, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Apply(entries); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		seq, ok, err := s.StatementByClaimsDigest(e.ClaimsDigest)
		want := e.Seqno
		if e.Seqno == 5 {
			want = 31
		}
		switch {
		case err != nil:
			t.Fatal(err)
		case e.Kind == engine.KindStatement && (!ok || seq != want):
			t.Errorf("statement %d: found %d, %v; want %d", e.Seqno, seq, ok, want)
		case e.Kind != engine.KindStatement && ok:
			t.Errorf("%s entry %d is indexed as a statement (%d)", e.Kind, e.Seqno, seq)
		}
	}
	if _, ok, _ := s.StatementByClaimsDigest(engine.Digest{0xff}); ok {
		t.Error("an unknown digest was found")
	}
}

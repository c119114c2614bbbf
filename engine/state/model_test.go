package state

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/nodes"
)

// nodeLog is a log of n entries (makeEntries) in which entry 3 adds node
// n1, 12 retires it, 25 adds n2 and 33 retires it, and a foreign message
// sits at 40: signatures at 10, 20, 30 cover n1's retirement, not n2's.
func nodeLog(t *testing.T, n int) sliceLog {
	_, log := makeEntries(t, 39)
	rec := func(id, status string) engine.Write {
		v, _ := json.Marshal(nodes.Record{NodeID: id, Status: status, Role: "participant", Address: id + ":443"})
		return engine.Write{Table: engine.TableNodes, Key: id, Value: v}
	}
	for seq, w := range map[int]engine.Write{3: rec("n1", nodes.StatusTrusted), 12: rec("n1", nodes.StatusRetired), 25: rec("n2", nodes.StatusPending), 33: rec("n2", nodes.StatusRetired)} {
		e, err := engine.DecodeEntry(log[seq-1].Data)
		if err != nil {
			t.Fatal(err)
		}
		e.Writes = append(e.Writes, w)
		e.Seal()
		log[seq-1] = signed(t, testNode, e)
	}
	log = append(log, engine.LedgerMsg{Seq: 40, Subject: "gavel.ledger.statement", Data: []byte("foreign")})
	for len(log) < n {
		log = append(log, signed(t, testNode, next(log, fmt.Sprint("k", len(log)))))
	}
	return log
}

func dumpModel(t *testing.T, m engine.StateReader) string {
	t.Helper()
	var b bytes.Buffer
	for _, table := range nodes.ModelTables {
		if err := m.Range(table, func(k string, v []byte) bool { fmt.Fprintf(&b, "%s|%s|%s\n", table, k, v); return true }); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func openProjected(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.SetLogger(slog.New(slog.DiscardHandler))
	s.SetProjector(nodes.Projector{})
	return s
}

// TestReadModelFollowsTheState: the read model is folded in the batch
// that applies the entries, so it reflects the state's seqno whatever the
// batching — the whole log at once, two catch-ups, or runs of entries as
// the sequencer applies them — and is the same byte for byte.
func TestReadModelFollowsTheState(t *testing.T) {
	ctx := context.Background()
	log := nodeLog(t, 45)
	whole := openProjected(t)
	if err := CatchUp(ctx, whole, log); err != nil {
		t.Fatal(err)
	}
	want := dumpModel(t, whole.Model())
	for _, needle := range []string{"nodes.retired_signed|n1|", "nodes.retired_unsigned|n2|", `"seqno":45`, `"last_signature":30`} {
		if !bytes.Contains([]byte(want), []byte(needle)) {
			t.Fatalf("the read model lacks %s:\n%s", needle, want)
		}
	}
	halves := openProjected(t)
	if err := CatchUp(ctx, halves, log[:17]); err != nil {
		t.Fatal(err)
	}
	if p, _ := (nodes.Projector{}).Position(halves.Model()); p != 17 {
		t.Fatalf("position %d after 17 entries", p)
	}
	if err := CatchUp(ctx, halves, log); err != nil {
		t.Fatal(err)
	}
	runs := openProjected(t)
	var entries []*engine.Entry
	trusted := engine.NewTrustedNodes()
	var at Meta
	entries = openChunk(trusted, log, &at, nil)
	for i := 0; i < len(entries); i += 7 {
		if err := runs.Apply(entries[i:min(i+7, len(entries))]); err != nil {
			t.Fatal(err)
		}
	}
	for name, s := range map[string]*Store{"two catch-ups": halves, "runs of seven": runs} {
		if got := dumpModel(t, s.Model()); got != want {
			t.Errorf("%s: read model\n%s\nwant\n%s", name, got, want)
		}
	}
}

// TestCatchUpRefoldsTheReadModel: a store whose read model does not
// reflect its state — a folder from before the read model, or one whose
// model was dropped — gets it refolded from the log by the next catch-up,
// equal to one folded live.
func TestCatchUpRefoldsTheReadModel(t *testing.T) {
	ctx := context.Background()
	log := nodeLog(t, 45)
	live := openProjected(t)
	if err := CatchUp(ctx, live, log); err != nil {
		t.Fatal(err)
	}
	want := dumpModel(t, live.Model())

	dir := t.TempDir()
	old, err := Open(dir) // no projector: a folder of an older build
	if err != nil {
		t.Fatal(err)
	}
	if err := CatchUp(ctx, old, log[:41]); err != nil {
		t.Fatal(err)
	}
	old.Close()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetProjector(nodes.Projector{})
	if err := s.Apply([]*engine.Entry{next(log[:41], "x")}); err == nil {
		t.Fatal("Apply folded entry 42 onto an empty read model")
	}
	if err := CatchUp(ctx, s, log); err != nil {
		t.Fatal(err)
	}
	if got := dumpModel(t, s.Model()); got != want {
		t.Fatalf("refolded read model\n%s\nwant\n%s", got, want)
	}
	if err := s.DropModel(); err != nil {
		t.Fatal(err)
	}
	if got := dumpModel(t, s.Model()); got != "" {
		t.Fatalf("dropped read model still holds\n%s", got)
	}
	if err := CatchUp(ctx, s, log); err != nil {
		t.Fatal(err)
	}
	if got := dumpModel(t, s.Model()); got != want {
		t.Fatalf("read model rebuilt after a drop\n%s\nwant\n%s", got, want)
	}
	// A log shorter than the state cannot refold it.
	if err := s.DropModel(); err != nil {
		t.Fatal(err)
	}
	if err := CatchUp(ctx, s, log[:30]); err == nil {
		t.Fatal("a read model was refolded from a log shorter than the state")
	}
}

// TestSnapshotIsOnePosition: a snapshot keeps reading the tables, the read
// model and the meta of the batch it was taken at while later batches
// apply.
func TestSnapshotIsOnePosition(t *testing.T) {
	ctx := context.Background()
	log := nodeLog(t, 45)
	s := openProjected(t)
	if err := CatchUp(ctx, s, log[:20]); err != nil {
		t.Fatal(err)
	}
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	before := dumpModel(t, sn.Model())
	if err := CatchUp(ctx, s, log); err != nil {
		t.Fatal(err)
	}
	if p, _ := (nodes.Projector{}).Position(sn.Model()); p != 20 || sn.Meta().Seqno != 20 || dumpModel(t, sn.Model()) != before {
		t.Fatalf("the snapshot moved: position %d, meta %d", p, sn.Meta().Seqno)
	}
	if _, ok, _ := sn.Get(engine.TableNodes, "n2"); ok {
		t.Fatal("the snapshot reads a node written after it")
	}
	if _, ok, _ := s.Get(engine.TableNodes, "n2"); !ok {
		t.Fatal("the store lacks n2")
	}
	if p, _ := (nodes.Projector{}).Position(s.Model()); p != 45 || s.Meta().Seqno != 45 {
		t.Fatalf("store at %d, read model at %d", s.Meta().Seqno, p)
	}
}

// BenchmarkApplyReadModel is Apply's cost per entry in runs of 100 (a
// group commit's size), without and with the node read model folded in
// the same batch.
func BenchmarkApplyReadModel(b *testing.B) {
	_, log := makeEntries(b, 4096)
	var at Meta
	entries := openChunk(engine.NewTrustedNodes(), log, &at, nil)
	for _, withModel := range []bool{false, true} {
		b.Run(fmt.Sprintf("read_model=%v", withModel), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				s, err := Open(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				if withModel {
					s.SetProjector(nodes.Projector{})
				}
				b.StartTimer()
				for i := 0; i < len(entries); i += 100 {
					if err := s.Apply(entries[i:min(i+100, len(entries))]); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(entries)), "ns/entry")
		})
	}
}

// TestCatchUpHealsACorruptReadModel: a read model whose position or
// records do not read is refolded from the log by catch-up, and the
// entries then apply onto it.
func TestCatchUpHealsACorruptReadModel(t *testing.T) {
	ctx := context.Background()
	log := nodeLog(t, 45)
	v, _ := json.Marshal(nodes.Record{NodeID: "n2", Status: nodes.StatusTrusted})
	log = append(log, signed(t, testNode, next(log, "k46", engine.Write{Table: engine.TableNodes, Key: "n2", Value: v})))
	live := openProjected(t)
	if err := CatchUp(ctx, live, log); err != nil {
		t.Fatal(err)
	}
	want := dumpModel(t, live.Model())
	for _, bad := range []struct{ table, key string }{{nodes.ModelPosition, ""}, {nodes.ModelNodes, "n2"}} {
		s := openProjected(t)
		if err := CatchUp(ctx, s, log[:45]); err != nil {
			t.Fatal(err)
		}
		if err := s.db.Set(modelKey(bad.table, bad.key), []byte("not json"), nil); err != nil {
			t.Fatal(err)
		}
		if err := CatchUp(ctx, s, log); err != nil {
			t.Fatalf("%s/%s corrupt: %v", bad.table, bad.key, err)
		}
		if got := dumpModel(t, s.Model()); got != want {
			t.Fatalf("%s/%s corrupt: healed read model\n%s\nwant\n%s", bad.table, bad.key, got, want)
		}
	}
}

// BenchmarkRefoldReadModel is a rebuild's cost per entry (`gavel
// projections rebuild`): the node read model dropped and refolded from a
// log of 4096 entries, authentication included.
func BenchmarkRefoldReadModel(b *testing.B) {
	_, log := makeEntries(b, 4096)
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.SetProjector(nodes.Projector{})
	if err := CatchUp(context.Background(), s, log); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := s.refoldModel(context.Background(), log); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(log)), "ns/entry")
}

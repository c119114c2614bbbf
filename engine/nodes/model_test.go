package nodes_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/nodes"
)

func nodeWrite(id, status string) engine.Write {
	v, _ := json.Marshal(nodes.Record{NodeID: id, Status: status, Role: "participant", Address: id + ".example:443", HostData: "aa"})
	return engine.Write{Table: engine.TableNodes, Key: id, Value: v}
}

func gov(seq uint64, ws ...engine.Write) *engine.Entry {
	return &engine.Entry{Seqno: seq, Kind: engine.KindGovProposal, Writes: ws}
}

func sig(seq uint64) *engine.Entry { return &engine.Entry{Seqno: seq, Kind: engine.KindSignature} }

func modelNode(t *testing.T, m engine.StateReader, id string) (nodes.ModelNode, bool) {
	t.Helper()
	v, ok, _ := m.Get(nodes.ModelNodes, id)
	var n nodes.ModelNode
	if ok {
		if err := json.Unmarshal(v, &n); err != nil {
			t.Fatal(err)
		}
	}
	return n, ok
}

func keys(m engine.StateReader, table string) string {
	var out []string
	m.Range(table, func(k string, _ []byte) bool { out = append(out, k); return true })
	return fmt.Sprint(out)
}

// TestModelRetirement: a retirement is signed by the first signature entry
// after the write that retired the node, and not by one before it; a
// later write of the record needs a later signature; a delete leaves
// nothing behind.
func TestModelRetirement(t *testing.T) {
	f := nodes.NewFold()
	steps := []struct {
		e                  *engine.Entry
		unsigned, signed   string
		byStatus           string
		lastWritten        uint64
		committed, primary bool
	}{
		{e: gov(1, nodeWrite("n1", nodes.StatusTrusted)), unsigned: "[]", signed: "[]", byStatus: "[Trusted/n1]", lastWritten: 1},
		{e: sig(2), unsigned: "[]", signed: "[]", byStatus: "[Trusted/n1]", lastWritten: 1},
		{e: gov(3, nodeWrite("n1", nodes.StatusRetired)), unsigned: "[n1]", signed: "[]", byStatus: "[Retired/n1]", lastWritten: 3},
		{e: sig(4), unsigned: "[]", signed: "[n1]", byStatus: "[Retired/n1]", lastWritten: 3, committed: true},
		{e: gov(5, nodeWrite("n1", nodes.StatusRetired)), unsigned: "[n1]", signed: "[]", byStatus: "[Retired/n1]", lastWritten: 5},
		{e: sig(6), unsigned: "[]", signed: "[n1]", byStatus: "[Retired/n1]", lastWritten: 5, committed: true},
		{e: &engine.Entry{Seqno: 7, Kind: engine.KindNodeDelete, Writes: engine.WriteSet{{Table: engine.TableNodes, Key: "n1", Delete: true}}}, unsigned: "[]", signed: "[]", byStatus: "[]"},
	}
	for _, s := range steps {
		f.Observe(s.e)
		if err := f.Err(); err != nil {
			t.Fatal(err)
		}
		if got := keys(f.Model, nodes.ModelUnsigned); got != s.unsigned {
			t.Errorf("seq %d: unsigned %s, want %s", s.e.Seqno, got, s.unsigned)
		}
		if got := keys(f.Model, nodes.ModelSigned); got != s.signed {
			t.Errorf("seq %d: signed %s, want %s", s.e.Seqno, got, s.signed)
		}
		if got := keys(f.Model, nodes.ModelByStatus); got != s.byStatus {
			t.Errorf("seq %d: by status %s, want %s", s.e.Seqno, got, s.byStatus)
		}
		n, _ := modelNode(t, f.Model, "n1")
		if n.LastWritten != s.lastWritten {
			t.Errorf("seq %d: last_written %d, want %d", s.e.Seqno, n.LastWritten, s.lastWritten)
		}
		rec := nodes.Record{NodeID: "n1"}
		if got := f.RetiredCommitted(rec, ""); got != s.committed {
			t.Errorf("seq %d: retired_committed %v, want %v", s.e.Seqno, got, s.committed)
		}
		if f.RetiredCommitted(rec, "n1") {
			t.Errorf("seq %d: the primary is retired_committed", s.e.Seqno)
		}
		if f.Seqno() != s.e.Seqno {
			t.Errorf("position %d after %d", f.Seqno(), s.e.Seqno)
		}
	}
}

// TestModelHostDataAndPolicy: host data of both formats with the SNP
// security policy checked against its digest, and the join policy, set
// and removed; an unreadable node record is kept, without a status.
func TestModelHostDataAndPolicy(t *testing.T) {
	policy := "package policy\nallow := true"
	sum := sha256.Sum256([]byte(policy))
	good := hex.EncodeToString(sum[:])
	sp, _ := json.Marshal(map[string]string{"security_policy": policy})
	f := nodes.NewFold()
	f.Observe(gov(1,
		engine.Write{Table: nodes.TableSNPHostData, Key: good, Value: sp},
		engine.Write{Table: nodes.TableSNPHostData, Key: "00" + good[2:], Value: sp},
		engine.Write{Table: nodes.TableSNPHostData, Key: "bb", Value: []byte(`{}`)},
		engine.Write{Table: nodes.TableVirtualHostData, Key: good, Value: []byte(`{"metadata":{}}`)},
		engine.Write{Table: nodes.TableJoinPolicy, Key: "", Value: []byte(`"export function apply() { return true; }"`)},
		engine.Write{Table: engine.TableNodes, Key: "bad", Value: []byte(`[1]`)},
	))
	want := map[string]bool{"sev-snp/" + good: true, "sev-snp/00" + good[2:]: false, "sev-snp/bb": false, "virtual/" + good: false}
	got := map[string]bool{}
	f.Model.Range(nodes.ModelHostData, func(k string, v []byte) bool {
		var h nodes.HostData
		json.Unmarshal(v, &h)
		got[h.Format+"/"+h.HostData] = h.PolicyMatches
		if k != h.Format+"/"+h.HostData {
			t.Errorf("key %s holds %+v", k, h)
		}
		return true
	})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("host data %v, want %v", got, want)
	}
	if v, ok, _ := f.Model.Get(nodes.ModelPolicy, ""); !ok || !bytes.Contains(v, []byte("apply")) {
		t.Fatalf("join policy %q %v", v, ok)
	}
	if n, ok := modelNode(t, f.Model, "bad"); !ok || n.Unreadable == "" || n.Status != "" || keys(f.Model, nodes.ModelByStatus) != "[]" {
		t.Fatalf("unreadable record %+v %v", n, ok)
	}
	f.Observe(gov(2,
		engine.Write{Table: nodes.TableSNPHostData, Key: good, Delete: true},
		engine.Write{Table: nodes.TableJoinPolicy, Key: "", Delete: true},
	))
	if _, ok, _ := f.Model.Get(nodes.ModelPolicy, ""); ok {
		t.Fatal("the removed join policy is still in force")
	}
	if _, ok, _ := f.Model.Get(nodes.ModelHostData, "sev-snp/"+good); ok {
		t.Fatal("removed host data is still trusted")
	}
	f.Observe(gov(4))
	if f.Err() == nil {
		t.Fatal("a gap in the log was folded")
	}
}

// randomLog is a log of n entries over a few nodes: joins, status
// changes, deletes, host data and signatures, the same for a seed.
func randomLog(seed uint64, n int) []*engine.Entry {
	r := rand.New(rand.NewPCG(seed, 0))
	statuses := []string{nodes.StatusPending, nodes.StatusTrusted, nodes.StatusRetired}
	var log []*engine.Entry
	for i := 1; i <= n; i++ {
		seq := uint64(i)
		switch r.IntN(6) {
		case 0:
			log = append(log, sig(seq))
		case 1:
			log = append(log, &engine.Entry{Seqno: seq, Kind: engine.KindVoid})
		case 2:
			id := fmt.Sprintf("n%d", r.IntN(5))
			log = append(log, gov(seq, engine.Write{Table: engine.TableNodes, Key: id, Delete: true}))
		case 3:
			log = append(log, gov(seq, engine.Write{Table: nodes.TableVirtualHostData, Key: fmt.Sprintf("%02x", r.IntN(4)), Value: []byte(`{}`), Delete: r.IntN(2) == 0}))
		default:
			var ws engine.WriteSet
			for range 1 + r.IntN(3) {
				ws = append(ws, nodeWrite(fmt.Sprintf("n%d", r.IntN(5)), statuses[r.IntN(3)]))
			}
			log = append(log, gov(seq, ws.Canonical()...))
		}
	}
	return log
}

// naiveRemovable is the rule stated plainly: retired, and some signature
// entry comes after the last write of its record.
func naiveRemovable(log []*engine.Entry) string {
	last := map[string]uint64{}
	status := map[string]string{}
	var lastSig uint64
	for _, e := range log {
		if e.Kind == engine.KindSignature {
			lastSig = e.Seqno
		}
		for _, w := range e.Writes {
			if w.Table != engine.TableNodes {
				continue
			}
			if w.Delete {
				delete(last, w.Key)
				delete(status, w.Key)
				continue
			}
			var r nodes.Record
			json.Unmarshal(w.Value, &r)
			last[w.Key], status[w.Key] = e.Seqno, r.Status
		}
	}
	var out []string
	for i := range 5 {
		id := fmt.Sprintf("n%d", i)
		if s, ok := status[id]; ok && s == nodes.StatusRetired && last[id] < lastSig {
			out = append(out, id)
		}
	}
	return fmt.Sprint(out)
}

// TestModelIgnoresBatchBoundaries: folding a log one entry at a time, all
// at once, or in random runs (as group commit and catch-up batch it)
// gives the same read model, byte for byte, and its removable nodes are
// the naive rule's.
func TestModelIgnoresBatchBoundaries(t *testing.T) {
	dump := func(m constitution.MemState) string {
		var b bytes.Buffer
		for _, table := range nodes.ModelTables {
			m.Range(table, func(k string, v []byte) bool { fmt.Fprintf(&b, "%s|%s|%s\n", table, k, v); return true })
		}
		return b.String()
	}
	for seed := range uint64(50) {
		log := randomLog(seed, 200)
		one := nodes.NewFold()
		for _, e := range log {
			one.Observe(e)
		}
		if one.Err() != nil {
			t.Fatal(one.Err())
		}
		all := constitution.MemState{}
		ws, err := nodes.Projector{}.Project(all, log)
		if err != nil {
			t.Fatal(err)
		}
		all.Apply(ws)
		runs := constitution.MemState{}
		r := rand.New(rand.NewPCG(seed, 1))
		for i := 0; i < len(log); {
			j := min(len(log), i+1+r.IntN(20))
			ws, err := nodes.Projector{}.Project(runs, log[i:j])
			if err != nil {
				t.Fatal(err)
			}
			runs.Apply(ws)
			i = j
		}
		if a, b, c := dump(one.Model), dump(all), dump(runs); a != b || a != c {
			t.Fatalf("seed %d: the read model depends on batching\none at a time:\n%s\nall at once:\n%s\nruns:\n%s", seed, a, b, c)
		}
		if got, want := keys(one.Model, nodes.ModelSigned), naiveRemovable(log); got != want {
			t.Fatalf("seed %d: removable %s, the naive rule says %s", seed, got, want)
		}
	}
}

package netmap_test

import (
	"crypto/rand"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/engine/state"
)

// The commands and the map on the replica's real pebble state: the map
// reads the event horizon through the seen index in pebble's key order and
// uses the last applied entry's time, and agrees with the in-memory fold.
func TestMapOnPebbleState(t *testing.T) {
	store, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	mem := constitution.MemState{}
	seq := uint64(0)
	apply := func(kind engine.EntryKind, at time.Time, ws engine.WriteSet) {
		t.Helper()
		seq++
		e := &engine.Entry{Kind: kind, View: 1, Seqno: seq, TimeMillis: at.UnixMilli(), Writes: ws}
		rand.Read(e.Nonce[:])
		e.Seal()
		if err := store.Apply([]*engine.Entry{e}); err != nil {
			t.Fatal(err)
		}
		mem.Apply(ws)
	}
	p := baseParams()
	p.EventHorizon = 10 * time.Hour
	ws, err := netmap.GenesisWrites(store, p, facts(1, t0), netmap.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	apply(engine.KindGenesis, t0, ws)
	var want []string
	for i := range 40 {
		n := newNode(t, fmt.Sprintf("n%d", i), "ES256")
		rec := n.record(netmap.StatusTrusted)
		b, _ := jsonOf(rec)
		at := t0.Add(time.Duration(i) * time.Hour)
		apply(engine.KindGovProposal, at, engine.WriteSet{{Table: netmap.NodesDirectoryTable, Key: n.id, Value: b}})
		v, err := netmap.VerifyNodeInfo(n.sign(t, n.info(1)), dir(store), netmap.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		eff, err := netmap.Publish{Info: v}.Execute(store, facts(seq+1, at))
		if err != nil {
			t.Fatal(err)
		}
		apply(netmap.KindNodeInfo, at, eff.Writes)
		if i >= 29 { // within 10 h of the last entry, at 39 h
			want = append(want, v.Hash)
		}
	}
	asOf := time.UnixMilli(store.Meta().TimeMillis)
	got, err := netmap.Map(store, dir(store), asOf)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	if !slices.Equal(got.NodeInfoHashes, want) {
		t.Fatalf("pebble map has %d nodes, want %d", len(got.NodeInfoHashes), len(want))
	}
	fromMem, err := netmap.Map(mem, dir(mem), asOf)
	if err != nil || string(fromMem.Encode()) != string(got.Encode()) {
		t.Fatalf("the in-memory fold disagrees: %v", err)
	}
}

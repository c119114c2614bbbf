package nodes_test

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/nodes"
)

// FuzzParseJoin: any bytes are refused with a typed error or parse into a
// join whose node id is its key's.
func FuzzParseJoin(f *testing.F) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	raw, err := nodes.SignJoin(key, nodes.JoinRequest{Role: "participant", Address: "h:1", Attestation: json.RawMessage(`{"format":"virtual"}`)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := nodes.ParseJoin(b)
		if err != nil {
			if engine.AsError(err).Code == "InternalError" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if j.NodeID != engine.NodeID(j.PublicKey) {
			t.Fatal("node id is not the key's")
		}
	})
}

// FuzzProjector: whatever an entry wrote into the node, host data and
// join policy tables, the read model folds it without error, the same in
// one batch as one entry at a time, and a node record is either read or
// kept as unreadable.
func FuzzProjector(f *testing.F) {
	f.Add([]byte(`{"node_id":"n","status":"Retired","node_data":{"a":1}}`), []byte(`{"security_policy":"p"}`), true)
	f.Add([]byte(`{"status":7}`), []byte(`[`), false)
	f.Add([]byte(`{"node_data":"\u003c"}`), []byte(`{"security_policy":""}`), true)
	f.Fuzz(func(t *testing.T, record, hostData []byte, signed bool) {
		log := []*engine.Entry{
			{Seqno: 1, Kind: engine.KindGovProposal, Writes: engine.WriteSet{
				{Table: engine.TableNodes, Key: "n", Value: record},
				{Table: nodes.TableSNPHostData, Key: "h", Value: hostData},
				{Table: nodes.TableJoinPolicy, Key: "", Value: hostData},
			}.Canonical()},
			{Seqno: 2, Kind: engine.KindSignature},
			{Seqno: 3, Kind: engine.KindGovProposal, Writes: engine.WriteSet{{Table: engine.TableNodes, Key: "m", Value: record}}},
		}
		if !signed {
			log[1].Kind = engine.KindVoid
		}
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
		for _, table := range nodes.ModelTables {
			a, b := all[table], one.Model[table]
			if len(a) != len(b) {
				t.Fatalf("%s: %d keys in one batch, %d one at a time", table, len(a), len(b))
			}
			for k, v := range a {
				if string(b[k]) != string(v) {
					t.Fatalf("%s/%s: %q in one batch, %q one at a time", table, k, v, b[k])
				}
			}
		}
		v, ok := all[nodes.ModelNodes]["n"]
		var n nodes.ModelNode
		if !ok || json.Unmarshal(v, &n) != nil || n.NodeID != "n" || (n.Unreadable == "") == (json.Unmarshal(record, new(nodes.Record)) != nil) {
			t.Fatalf("node n folded as %q", v)
		}
	})
}

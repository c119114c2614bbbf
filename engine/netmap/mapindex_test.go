package netmap_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/netmap"
)

// The incremental index agrees with a full build after every entry of a
// random history of publishes, re-publishes, replacements, retirements,
// acknowledgements and a flag day, over time that passes the event horizon;
// whenever Apply asks for a rebuild the test rebuilds, as the replica does.
func TestMapIndexAgreesWithBuild(t *testing.T) {
	p := baseParams()
	p.EventHorizon = time.Hour
	st := genesisState(t, p)
	var nodes []*testNode
	for i := range 6 {
		n := newNode(t, string(rune('a'+i))+"node", "EdDSA")
		putNode(st, n, netmap.StatusTrusted)
		nodes = append(nodes, n)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	serial := map[string]int64{}
	now := t0
	x, err := netmap.BuildIndex(st, dir(st), now)
	if err != nil {
		t.Fatal(err)
	}
	rebuilds := 0
	for seq := uint64(2); seq < 400; seq++ {
		now = now.Add(time.Duration(rng.IntN(20)) * time.Minute)
		n := nodes[rng.IntN(len(nodes))]
		var cmd engine.Command
		switch k := rng.IntN(10); {
		case k < 6:
			if rng.IntN(3) == 0 {
				serial[n.id]++
			}
			v, err := netmap.VerifyNodeInfo(n.sign(t, n.info(serial[n.id])), dir(st), netmap.DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			cmd = netmap.Publish{Info: v}
		case k == 6:
			b, _ := jsonOf(n.record([]string{netmap.StatusTrusted, netmap.StatusRetired}[rng.IntN(2)]))
			ws := engine.WriteSet{{Table: netmap.NodesDirectoryTable, Key: n.id, Value: b}}
			st.Apply(ws)
			x = step(t, st, x, ws, now, &rebuilds)
			continue
		case k == 7:
			if _, ok, _ := netmap.LoadPending(st); !ok {
				params := fmt.Sprintf(`{"minimum_platform_version":1,"notaries":[],"max_message_size":%d,"max_transaction_size":1024,"event_horizon":3600}`, 1024+seq)
				u, err := netmap.ParseSetParameters([]byte(`{"parameters":`+params+`,"description":"d","update_deadline":"`+
					now.Add(2*time.Hour).Format(time.RFC3339)+`"}`), netmap.DefaultLimits())
				if err != nil {
					t.Fatal(err)
				}
				ws, _, err := u.Apply(st, facts(seq, now), netmap.DefaultLimits())
				if err != nil {
					t.Fatal(err)
				}
				ws = ws.Canonical()
				st.Apply(ws)
				x = step(t, st, x, ws, now, &rebuilds)
				continue
			}
			pend, _, _ := netmap.LoadPending(st)
			if fd, due, _ := netmap.DueFlagDay(st, now); due {
				cmd = fd
			} else {
				ack, _ := netmap.SignAck(n.key, pend.NewParametersHash)
				v, err := netmap.VerifyAck(ack, dir(st))
				if err != nil {
					t.Fatal(err)
				}
				cmd = netmap.Ack{Ack: v}
			}
		default:
			cmd = nil // time passes with an entry that writes nothing of the map
		}
		var ws engine.WriteSet
		if cmd != nil {
			eff, err := cmd.Execute(st, facts(seq, now))
			if err != nil {
				continue // a refusal writes nothing
			}
			ws = eff.Writes.Canonical() // as entries hold them
			st.Apply(ws)
		}
		x = step(t, st, x, ws, now, &rebuilds)
	}
	if rebuilds == 0 {
		t.Fatal("no history step needed a rebuild: the test did not exercise Apply's refusals")
	}
}

func step(t *testing.T, st engine.StateReader, x *netmap.MapIndex, ws engine.WriteSet, now time.Time, rebuilds *int) *netmap.MapIndex {
	t.Helper()
	before := map[string]string{}
	x.Live(func(id, hash string) { before[id] = hash })
	x.TakeChanged()
	ok, err := x.Apply(st, dir(st), ws, now)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		// Every node that entered, left or changed NodeInfo is reported
		// (the node feeds publish exactly these).
		changed := x.TakeChanged()
		after := map[string]string{}
		x.Live(func(id, hash string) { after[id] = hash })
		for id := range union(before, after) {
			if before[id] != after[id] && !slices.Contains(changed, id) {
				t.Fatalf("at %v: node %s went from %q to %q unreported (changed %v)", now, id, before[id], after[id], changed)
			}
		}
	}
	full, err := netmap.BuildIndex(st, dir(st), now)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		*rebuilds++
		return full
	}
	got, want := x.Payload(), full.Payload()
	if !slices.Equal(got.NodeInfoHashes, want.NodeInfoHashes) || got.NetworkParametersHash != want.NetworkParametersHash ||
		(got.ParametersUpdate == nil) != (want.ParametersUpdate == nil) {
		t.Fatalf("at %v: incremental %+v, full %+v", now, got, want)
	}
	// The kept encoding is the payload's JSON, byte for byte.
	if enc := x.AppendPayload(nil); !bytes.Equal(enc, want.Encode()) || len(enc) != x.PayloadLen() {
		t.Fatalf("at %v: kept encoding %s (len %d), want %s", now, enc, x.PayloadLen(), want.Encode())
	}
	return x
}

func union(a, b map[string]string) map[string]bool {
	u := map[string]bool{}
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

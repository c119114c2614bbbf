package netmap_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/netmap"
)

func TestNodesDirectoryTableIsTheGovernanceNodesTable(t *testing.T) {
	if netmap.NodesDirectoryTable != constitution.TableNodes {
		t.Fatalf("NodesDirectoryTable %q, constitution.TableNodes %q", netmap.NodesDirectoryTable, constitution.TableNodes)
	}
}

func TestNormalizeLegalName(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"O=Bank A, L=London, C=GB", "O=Bank A, L=London, C=GB", ""},
		{"C=GB,L=London,O=Bank A", "O=Bank A, L=London, C=GB", ""},
		{"CN=x, OU=y, O=z, L=w, ST=v, C=US", "CN=x, OU=y, O=z, L=w, ST=v, C=US", ""},
		{"O=Bank A, L=London", "", "attribute C is required"},
		{"O=Bank A, L=London, C=gb", "", "two capital letters"},
		{"O=Bank A, L=London, C=GBR", "", "two capital letters"},
		{"O=Bank A, O=Bank B, L=London, C=GB", "", "appears twice"},
		{"X=1, O=Bank A, L=London, C=GB", "", "not one of"},
		{"O=, L=London, C=GB", "", "is empty"},
		{"O=Bank\"A, L=London, C=GB", "", "contains"},
		{"Bank A", "", "not an attribute=value pair"},
		{"", "", "not an attribute=value pair"},
	} {
		got, err := netmap.NormalizeLegalName(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParametersCanonicalForm(t *testing.T) {
	lim := netmap.DefaultLimits()
	a := `{"minimum_platform_version":1,"notaries":[],"max_message_size":5,"max_transaction_size":4,"modified_time":"2026-01-01T00:00:00Z","epoch":3,"event_horizon":"720h","package_ownership":{"b.c":"k2","a.b":"k1"}}`
	b := `{"package_ownership":{"a.b":"k1","b.c":"k2"},"event_horizon":2592000,"epoch":3,"modified_time":"2026-01-01T00:00:00.000Z","max_transaction_size":4,"max_message_size":5,"notaries":[],"minimum_platform_version":1}`
	pa, err := netmap.ParseParameters([]byte(a), lim)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := netmap.ParseParameters([]byte(b), lim)
	if err != nil {
		t.Fatal(err)
	}
	if pa.Hash() != pb.Hash() {
		t.Fatalf("two spellings of one set hash differently:\n%s\n%s", pa.Canonical(), pb.Canonical())
	}
	want := `{"minimum_platform_version":1,"notaries":[],"max_message_size":5,"max_transaction_size":4,"modified_time":"2026-01-01T00:00:00Z","epoch":3,"event_horizon":2592000,"whitelisted_contract_implementations":{},"package_ownership":{"a.b":"k1","b.c":"k2"}}`
	if got := string(pa.Canonical()); got != want {
		t.Fatalf("canonical form\n got %s\nwant %s", got, want)
	}
	sum := sha256.Sum256([]byte(want))
	if pa.Hash() != hex.EncodeToString(sum[:]) {
		t.Fatal("hash is not SHA-256 of the canonical form")
	}
	again, err := netmap.ParseParameters(pa.Canonical(), lim)
	if err != nil || !again.Equal(pa) {
		t.Fatalf("canonical form does not round-trip: %v", err)
	}
	pc := pa
	pc.MaxMessageSize++
	if pc.Hash() == pa.Hash() {
		t.Fatal("a changed field kept the hash")
	}
	if got := netmap.ChangedFields(pa, pc); len(got) != 1 || got[0] != netmap.FieldMaxMessageSize {
		t.Fatalf("ChangedFields = %v", got)
	}
}

func TestParametersRules(t *testing.T) {
	lim := netmap.DefaultLimits()
	for _, tc := range []struct {
		name  string
		edit  func(*netmap.NetworkParameters)
		field string // the field the sentence names; "" = valid
	}{
		{"valid", func(*netmap.NetworkParameters) {}, ""},
		{"min platform 0", func(p *netmap.NetworkParameters) { p.MinimumPlatformVersion = 0 }, "minimum_platform_version"},
		{"message size 0", func(p *netmap.NetworkParameters) { p.MaxMessageSize = 0 }, "max_message_size"},
		{"tx size negative", func(p *netmap.NetworkParameters) { p.MaxTransactionSize = -1 }, "max_transaction_size"},
		{"epoch 0", func(p *netmap.NetworkParameters) { p.Epoch = 0 }, "epoch"},
		{"horizon 0", func(p *netmap.NetworkParameters) { p.EventHorizon = 0 }, "event_horizon"},
		{"no modified time", func(p *netmap.NetworkParameters) { p.ModifiedTime = time.Time{} }, "modified_time"},
		{"duplicate notary", func(p *netmap.NetworkParameters) {
			p.Notaries = append(p.Notaries, netmap.Notary{Identity: "C=CH, L=Zurich, O=Notary", Validating: true})
		}, "notaries"},
		{"bad notary name", func(p *netmap.NetworkParameters) { p.Notaries[0].Identity = "Notary" }, "notaries[0].identity"},
		{"too many notaries", func(p *netmap.NetworkParameters) {
			for i := range lim.MaxNotaries {
				p.Notaries = append(p.Notaries, netmap.Notary{Identity: fmt.Sprintf("O=N%d, L=Z, C=CH", i)})
			}
		}, "notaries"},
		{"bad package", func(p *netmap.NetworkParameters) { p.PackageOwnership = map[string]string{"com.-x": "k"} }, "package_ownership"},
		{"overlapping packages", func(p *netmap.NetworkParameters) {
			p.PackageOwnership = map[string]string{"com.a": "k", "com.a.b": "k"}
		}, "package_ownership"},
		{"package without key", func(p *netmap.NetworkParameters) { p.PackageOwnership = map[string]string{"com.a": " "} }, "package_ownership"},
		{"bad contract", func(p *netmap.NetworkParameters) {
			p.WhitelistedContractImplementations = map[string][]string{"1Cash": {strings.Repeat("a", 64)}}
		}, "whitelisted_contract_implementations"},
		{"bad attachment", func(p *netmap.NetworkParameters) {
			p.WhitelistedContractImplementations = map[string][]string{"com.Cash": {"A"}}
		}, "whitelisted_contract_implementations"},
		{"duplicate attachment", func(p *netmap.NetworkParameters) {
			p.WhitelistedContractImplementations = map[string][]string{"com.Cash": {strings.Repeat("a", 64), strings.Repeat("a", 64)}}
		}, "whitelisted_contract_implementations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := baseParams()
			p.Notaries = append([]netmap.Notary(nil), p.Notaries...)
			tc.edit(&p)
			err := p.Validate(lim)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			e := engine.AsError(err)
			if e.Kind != engine.KindInvalid || e.Code != netmap.CodeInvalidParameters || !strings.HasPrefix(e.Message, tc.field) || !strings.HasSuffix(e.Message, ".") {
				t.Fatalf("error %v: want a sentence starting with %s", err, tc.field)
			}
		})
	}
}

// Every write a publish makes is per node: the count does not grow with
// the number of nodes in the map.
func TestPublishWritesDoNotGrowWithTheMap(t *testing.T) {
	st := genesisState(t, baseParams())
	var counts []int
	for i := range 300 {
		n := newNode(t, fmt.Sprintf("n%d", i), "ES256")
		putNode(st, n, netmap.StatusTrusted)
		v, err := netmap.VerifyNodeInfo(n.sign(t, n.info(1)), dir(st), netmap.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		eff, err := netmap.Publish{Info: v}.Execute(st, facts(uint64(i+2), t0.Add(time.Duration(i)*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		st.Apply(eff.Writes)
		counts = append(counts, len(eff.Writes))
	}
	for i, c := range counts {
		if c != counts[0] || c > 4 {
			t.Fatalf("publish %d wrote %d keys, the first %d", i, c, counts[0])
		}
	}
	m, err := netmap.Map(st, dir(st), t0.Add(time.Hour))
	if err != nil || len(m.NodeInfoHashes) != 300 {
		t.Fatalf("map has %d nodes, %v", len(m.NodeInfoHashes), err)
	}
}

func TestMapPayloadShape(t *testing.T) {
	st := genesisState(t, baseParams())
	a, b := newNode(t, "a", "ES256"), newNode(t, "b", "EdDSA")
	for i, n := range []*testNode{a, b} {
		putNode(st, n, netmap.StatusTrusted)
		v, err := netmap.VerifyNodeInfo(n.sign(t, n.info(1)), dir(st), netmap.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		eff, err := netmap.Publish{Info: v}.Execute(st, facts(uint64(i+2), t0))
		if err != nil {
			t.Fatal(err)
		}
		st.Apply(eff.Writes)
	}
	m, err := netmap.Map(st, dir(st), t0)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]json.RawMessage
	if err := json.Unmarshal(m.Encode(), &generic); err != nil {
		t.Fatal(err)
	}
	if len(generic) != 3 || string(generic["parameters_update"]) != "null" || len(m.NodeInfoHashes) != 2 || m.NodeInfoHashes[0] > m.NodeInfoHashes[1] {
		t.Fatalf("map payload %s", m.Encode())
	}
	cur, _ := netmap.LoadCurrent(st)
	if m.NetworkParametersHash != cur.Hash || cur.Hash != baseParams().Hash() {
		t.Fatal("map does not name the parameters in force")
	}
}

func TestEnvelopes(t *testing.T) {
	lim := netmap.DefaultLimits()
	st := genesisState(t, baseParams())
	for _, alg := range []string{"ES256", "ES384", "EdDSA"} {
		n := newNode(t, alg, alg)
		putNode(st, n, netmap.StatusTrusted)
		if _, err := netmap.VerifyNodeInfo(n.sign(t, n.info(1)), dir(st), lim); err != nil {
			t.Fatalf("%s NodeInfo: %v", alg, err)
		}
		h := strings.Repeat("0", 64)
		ack, _ := netmap.SignAck(n.key, h)
		if v, err := netmap.VerifyAck(ack, dir(st)); err != nil || v.Hash != h || v.NodeID != n.id {
			t.Fatalf("%s ack: %+v %v", alg, v, err)
		}
	}
	n := newNode(t, "x", "ES256")
	putNode(st, n, netmap.StatusTrusted)
	info := n.sign(t, n.info(1))
	ack, _ := netmap.SignAck(n.key, strings.Repeat("0", 64))
	withUnprotected := func(raw []byte) []byte {
		m, _ := cose.DecodeSign1(raw)
		m.Unprotected = cose.Header{}
		m.Unprotected.Set(int64(4), []byte{0x41, 0x00})
		b, _ := m.Encode()
		return b
	}
	for _, tc := range []struct {
		name string
		run  func() error
		code string
	}{
		{"not COSE", func() error { _, err := netmap.VerifyNodeInfo([]byte(`{"serial":1}`), dir(st), lim); return err }, netmap.CodeInvalidNodeInfo},
		{"empty", func() error { _, err := netmap.VerifyNodeInfo(nil, dir(st), lim); return err }, netmap.CodeInvalidNodeInfo},
		{"an ack as a NodeInfo", func() error { _, err := netmap.VerifyNodeInfo(ack, dir(st), lim); return err }, netmap.CodeInvalidNodeInfo},
		{"a NodeInfo as an ack", func() error { _, err := netmap.VerifyAck(info, dir(st)); return err }, netmap.CodeInvalidAck},
		{"unprotected header", func() error { _, err := netmap.VerifyNodeInfo(withUnprotected(info), dir(st), lim); return err }, netmap.CodeInvalidNodeInfo},
		{"too large", func() error {
			small := lim
			small.MaxNodeInfoBytes = 100
			_, err := netmap.VerifyNodeInfo(info, dir(st), small)
			return err
		}, netmap.CodeInvalidNodeInfo},
		{"ack payload not a hash", func() error {
			raw, _ := netmap.SignAck(n.key, "latest")
			_, err := netmap.VerifyAck(raw, dir(st))
			return err
		}, netmap.CodeInvalidAck},
	} {
		if got := codeOf(tc.run()); got != tc.code {
			t.Errorf("%s: code %q, want %q", tc.name, got, tc.code)
		}
	}
}

func TestSignedParameters(t *testing.T) {
	lim := netmap.DefaultLimits()
	mapKey, other := newNode(t, "map", "ES256"), newNode(t, "other", "ES256")
	p := baseParams()
	raw, err := netmap.SignParameters(mapKey.key, p)
	if err != nil {
		t.Fatal(err)
	}
	got, h, err := netmap.VerifySignedParameters(raw, mapKey.key.Public(), lim)
	if err != nil || h != p.Hash() || !got.Equal(p) {
		t.Fatalf("%v %s", err, h)
	}
	if _, _, err := netmap.VerifySignedParameters(raw, other.key.Public(), lim); codeOf(err) != cose.CodeInvalidSignature {
		t.Fatalf("another key: %v", err)
	}
	// A signed payload that is not the canonical form would have another hash.
	loose := []byte(strings.Replace(string(p.Canonical()), `"epoch":1`, `"epoch": 1`, 1))
	m, _ := cose.DecodeSign1(raw)
	m.Payload = loose
	alg, _ := cose.DefaultAlgorithm(mapKey.key.Public())
	m.Signature, _ = cose.Sign(mapKey.key, alg, m.Protected, m.Payload)
	b, _ := m.Encode()
	if _, _, err := netmap.VerifySignedParameters(b, mapKey.key.Public(), lim); codeOf(err) != netmap.CodeInvalidParameters {
		t.Fatalf("non-canonical payload: %v", err)
	}
}

// The flag day's time check uses only the entry's time.
func TestFlagDayAtTheDeadline(t *testing.T) {
	lim := netmap.DefaultLimits()
	st := genesisState(t, baseParams())
	args, _ := json.Marshal(map[string]any{"parameters": json.RawMessage(`{"minimum_platform_version":2,"notaries":[],"max_message_size":1,"max_transaction_size":1}`),
		"description": "d", "update_deadline": "2026-01-02T00:00:00Z"})
	u, err := netmap.ParseSetParameters(args, lim)
	if err != nil {
		t.Fatal(err)
	}
	ws, pend, err := u.Apply(st, facts(2, t0), lim)
	if err != nil {
		t.Fatal(err)
	}
	st.Apply(ws)
	deadline := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	cmd := netmap.FlagDay{Hash: pend.NewParametersHash}
	if _, err := cmd.Execute(st, facts(3, deadline.Add(-time.Millisecond))); codeOf(err) != netmap.CodeFlagDayNotReached {
		t.Fatalf("a millisecond early: %v", err)
	}
	eff, err := cmd.Execute(st, facts(3, deadline))
	if err != nil {
		t.Fatal(err)
	}
	again, err := cmd.Execute(st, facts(3, deadline))
	if err != nil || !eff.Writes.Equal(again.Writes) {
		t.Fatal("the flag day is not re-derivable")
	}
	st.Apply(eff.Writes)
	cur, _ := netmap.LoadCurrent(st)
	p, _, _, _ := netmap.LoadParameters(st, cur.Hash)
	if cur.Epoch != 2 || p.Epoch != 2 || !p.ModifiedTime.Equal(t0) || cur.MinimumPlatform != 2 {
		t.Fatalf("in force: %+v, parameters %+v", cur, p)
	}
	dec, err := netmap.DecodeFlagDay(cmd.Input())
	if err != nil || dec != cmd {
		t.Fatalf("flag-day input does not decode: %v", err)
	}
}

func TestGenesisOnce(t *testing.T) {
	st := genesisState(t, baseParams())
	if _, err := netmap.GenesisWrites(st, baseParams(), facts(2, t0), netmap.DefaultLimits()); codeOf(err) != netmap.CodeNetworkParametersExist {
		t.Fatalf("second genesis: %v", err)
	}
	bad := baseParams()
	bad.MaxMessageSize = 0
	if _, err := netmap.GenesisWrites(constitution.MemState{}, bad, facts(1, t0), netmap.DefaultLimits()); codeOf(err) != netmap.CodeInvalidParameters {
		t.Fatalf("invalid genesis: %v", err)
	}
	if _, err := netmap.LoadCurrent(constitution.MemState{}); codeOf(err) != netmap.CodeNoNetworkParameters {
		t.Fatalf("no parameters: %v", err)
	}
}

func TestSeenKeyOrder(t *testing.T) {
	a, b := netmap.SeenKey(1000, "x"), netmap.SeenKey(2000, "x")
	if !(b < a) {
		t.Fatal("newer keys must sort first")
	}
	ms, id, err := netmap.ParseSeenKey(a)
	if err != nil || ms != 1000 || id != "x" {
		t.Fatalf("%d %q %v", ms, id, err)
	}
	if _, _, err := netmap.ParseSeenKey("nonsense"); err == nil {
		t.Fatal("bad key parsed")
	}
}

func TestDueFlagDayAndAcceptance(t *testing.T) {
	lim := netmap.DefaultLimits()
	st := genesisState(t, baseParams())
	if _, due, err := netmap.DueFlagDay(st, t0.Add(1000*time.Hour)); due || err != nil {
		t.Fatalf("due with nothing pending: %v", err)
	}
	a, b := newNode(t, "a", "ES256"), newNode(t, "b", "ES256")
	for i, n := range []*testNode{a, b} {
		putNode(st, n, netmap.StatusTrusted)
		v, _ := netmap.VerifyNodeInfo(n.sign(t, n.info(1)), dir(st), lim)
		eff, err := netmap.Publish{Info: v}.Execute(st, facts(uint64(2+i), t0))
		if err != nil {
			t.Fatal(err)
		}
		st.Apply(eff.Writes)
	}
	args := []byte(`{"parameters":{"minimum_platform_version":1,"notaries":[],"max_message_size":1,"max_transaction_size":1},"description":"","update_deadline":"2026-01-01T01:00:00Z"}`)
	u, err := netmap.ParseSetParameters(args, lim)
	if err != nil {
		t.Fatal(err)
	}
	ws, pend, err := u.Apply(st, facts(4, t0), lim)
	if err != nil {
		t.Fatal(err)
	}
	st.Apply(ws)
	raw, _ := netmap.SignAck(a.key, pend.NewParametersHash)
	v, err := netmap.VerifyAck(raw, dir(st))
	if err != nil {
		t.Fatal(err)
	}
	eff, err := netmap.Ack{Ack: v}.Execute(st, facts(5, t0))
	if err != nil {
		t.Fatal(err)
	}
	st.Apply(eff.Writes)
	yes, no, err := netmap.Acceptance(st, pend.NewParametersHash)
	if err != nil || len(yes) != 1 || yes[0] != a.id || len(no) != 1 || no[0] != b.id {
		t.Fatalf("accepted %v, not %v, %v", yes, no, err)
	}
	if _, due, _ := netmap.DueFlagDay(st, t0.Add(time.Hour-time.Millisecond)); due {
		t.Fatal("due before the deadline")
	}
	fd, due, err := netmap.DueFlagDay(st, t0.Add(time.Hour))
	if !due || err != nil || fd.Hash != pend.NewParametersHash {
		t.Fatalf("not due at the deadline: %v", err)
	}
}

// Canonical is read by many goroutines on the read side: it must not write
// to the parameters' maps.
func TestCanonicalDoesNotWrite(t *testing.T) {
	p := baseParams()
	p.WhitelistedContractImplementations = map[string][]string{"com.a.C": nil}
	done := make(chan string)
	for range 4 {
		go func() { done <- string(p.Canonical()) }()
	}
	first := <-done
	for range 3 {
		if <-done != first {
			t.Fatal("concurrent canonical forms differ")
		}
	}
	if p.WhitelistedContractImplementations["com.a.C"] != nil {
		t.Fatal("Canonical wrote to the caller's map")
	}
	if !strings.Contains(first, `"com.a.C":[]`) {
		t.Fatalf("a null list is not an empty one: %s", first)
	}
}

package exec_test

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/issuer"
)

func TestGenesisOnlyOnce(t *testing.T) {
	st := constitution.MemState{}
	g := exec.Genesis{ServiceCertPEM: []byte("cert"), Governance: engine.WriteSet{{Table: "gov.x", Key: "k", Value: []byte("1")}}}
	eff, err := g.Execute(st, engine.Facts{TxID: engine.TxID{View: 1, Seqno: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := eff.Writes.Value("gov.x", "k"); !ok || string(v) != "1" {
		t.Fatal("genesis dropped the governance writes")
	}
	st.Apply(eff.Writes)
	if _, err := g.Execute(st, engine.Facts{TxID: engine.TxID{View: 1, Seqno: 2}}); engine.AsError(err).Code != "ServiceExists" {
		t.Fatalf("second genesis: %v", err)
	}
}

func TestVerifyAndRegisterStatement(t *testing.T) {
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := iss.Sign("subject/1", "text/plain", []byte("x"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := exec.VerifyStatement(raw, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	eff, err := cmd.Execute(nil, engine.Facts{TxID: engine.TxID{View: 2, Seqno: 7}})
	if err != nil {
		t.Fatal(err)
	}
	var res exec.RegistrationResult
	if json.Unmarshal(eff.Result, &res) != nil || res.TxID != "2.7" || eff.ClaimsDigest != cmd.Statement.ClaimsDigest || len(eff.Writes) != 1 {
		t.Fatalf("effect %+v", eff)
	}
	if _, err := exec.VerifyStatement(raw[:len(raw)-1], time.Now()); err == nil {
		t.Fatal("a truncated statement verified")
	}
}

// Genesis records the replica's node as the service's first, Trusted
// service node, under its node id, so that the genesis entry authenticates
// itself and every later entry of that node.
func TestGenesisRecordsTheFirstNode(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	rec := engine.ServiceNodeRecord(pub, []byte("node cert"))
	eff, err := exec.Genesis{ServiceCertPEM: []byte("cert"), Node: rec}.Execute(constitution.MemState{}, engine.Facts{TxID: engine.TxID{View: 1, Seqno: 1}})
	if err != nil {
		t.Fatal(err)
	}
	v, ok := eff.Writes.Value(engine.TableNodes, engine.NodeID(pub))
	var got map[string]any
	if !ok || json.Unmarshal(v, &got) != nil || got["node_id"] != engine.NodeID(pub) || got["status"] != "Trusted" ||
		got["role"] != "service" || got["cert"] != "node cert" || got["public_key"] == "" {
		t.Fatalf("node record %s", v)
	}
	trusted := engine.NewTrustedNodes()
	trusted.Observe(eff.Writes)
	if !trusted.Trusts(engine.NodeID(pub)) {
		t.Fatal("the genesis node is not trusted")
	}
	// Behind a foreign message, a genesis could never authenticate itself.
	_, err = exec.Genesis{ServiceCertPEM: []byte("cert"), Node: rec}.Execute(constitution.MemState{}, engine.Facts{TxID: engine.TxID{View: 1, Seqno: 2}})
	if engine.AsError(err).Code != "LedgerNotEmpty" {
		t.Fatalf("genesis at seqno 2: %v", err)
	}
}

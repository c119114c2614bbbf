package exec_test

import (
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

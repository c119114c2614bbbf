package netmap_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/netmap"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type testNode struct {
	name string
	key  crypto.Signer
	id   string
}

func newNode(t testing.TB, name string, alg string) *testNode {
	t.Helper()
	var key crypto.Signer
	var err error
	switch alg {
	case "EdDSA":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case "ES384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	id, err := netmap.NodeID(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &testNode{name: name, key: key, id: id}
}

func (n *testNode) record(status string) netmap.NodeRecord {
	der, _ := x509.MarshalPKIXPublicKey(n.key.Public())
	return netmap.NodeRecord{NodeID: n.id, Status: status, Role: "participant",
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
}

func (n *testNode) info(serial int64) netmap.NodeInfo {
	return netmap.NodeInfo{Addresses: []string{n.name + ".example:10002"},
		LegalIdentities: []string{"O=" + n.name + ", L=London, C=GB"}, PlatformVersion: 4, Serial: serial}
}

func (n *testNode) sign(t testing.TB, info netmap.NodeInfo) []byte {
	t.Helper()
	raw, err := netmap.SignNodeInfo(n.key, info)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func putNode(st constitution.MemState, n *testNode, status string) {
	b, _ := json.Marshal(n.record(status))
	st.Apply(engine.WriteSet{{Table: netmap.NodesDirectoryTable, Key: n.id, Value: b}})
}

func baseParams() netmap.NetworkParameters {
	return netmap.NetworkParameters{
		MinimumPlatformVersion: 1,
		Notaries:               []netmap.Notary{{Identity: "O=Notary, L=Zurich, C=CH", Validating: false}},
		MaxMessageSize:         10 << 20,
		MaxTransactionSize:     10 << 20,
		ModifiedTime:           t0,
		Epoch:                  1,
		EventHorizon:           netmap.DefaultEventHorizon,
	}
}

func facts(seq uint64, at time.Time) engine.Facts {
	return engine.Facts{TxID: engine.TxID{View: 1, Seqno: seq}, Time: at}
}

// genesisState is a state with base parameters in force.
func genesisState(t testing.TB, p netmap.NetworkParameters) constitution.MemState {
	t.Helper()
	st := constitution.MemState{}
	ws, err := netmap.GenesisWrites(st, p, facts(1, t0), netmap.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	st.Apply(ws)
	return st
}

func dir(st engine.StateReader) netmap.NodeDirectory {
	return netmap.TableDirectory{State: st, Table: netmap.NodesDirectoryTable}
}

func jsonOf(v any) ([]byte, error) { return json.Marshal(v) }

func codeOf(err error) string {
	if err == nil {
		return ""
	}
	return engine.AsError(err).Code
}

package nodes_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/attest"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/nodes"
)

var (
	at          = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	codeA       = sha256.Sum256([]byte("code A"))
	measurement = []byte{1, 2, 3, 4}
)

type node struct {
	key ed25519.PrivateKey
	id  string
	der []byte
}

func newNode(t *testing.T) node {
	_, key, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	return node{key: key, id: engine.NodeID(key.Public().(ed25519.PublicKey)), der: der}
}

func (n node) join(t *testing.T, address string, hostData [32]byte, bind []byte) []byte {
	t.Helper()
	rd := attest.ReportDataFor(bind)
	ev, _ := json.Marshal(attest.VirtualEvidence(hostData, measurement, rd[:]))
	raw, err := nodes.SignJoin(n.key, nodes.JoinRequest{Role: nodes.RoleParticipant, Address: address, CodeVersion: "A", Attestation: ev})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// governed is a state trusting code A's host data and the measurement.
func governed() constitution.MemState {
	st := constitution.MemState{}
	st.Apply(engine.WriteSet{
		{Table: nodes.TableVirtualHostData, Key: hex.EncodeToString(codeA[:]), Value: []byte(`{}`)},
		{Table: nodes.TableVirtualMeasurements, Key: hex.EncodeToString(measurement), Value: []byte(`"AllowedToJoin"`)},
	})
	return st
}

func execute(t *testing.T, st constitution.MemState, raw []byte, s nodes.Settings, seq uint64) (engine.Effect, error) {
	t.Helper()
	j, err := nodes.VerifyJoin(raw, s, at, constitution.Limits{})
	if err != nil {
		return engine.Effect{}, err
	}
	eff, err := j.Execute(st, engine.Facts{TxID: engine.TxID{View: 1, Seqno: seq}, Time: at})
	if err == nil && !eff.Replayed {
		st.Apply(eff.Writes)
	}
	return eff, err
}

func TestJoinLifecycle(t *testing.T) {
	st := governed()
	virtual := nodes.Settings{Virtual: true}
	a := newNode(t)
	eff, err := execute(t, st, a.join(t, "10.0.0.1:443", codeA, a.der), virtual, 2)
	if err != nil || eff.Replayed {
		t.Fatalf("join: %v", err)
	}
	var res nodes.JoinResult
	if json.Unmarshal(eff.Result, &res) != nil || res.NodeID != a.id || res.NodeStatus != "Pending" {
		t.Fatalf("answer %s", eff.Result)
	}
	rec, ok, _ := nodes.ReadRecord(st, a.id)
	if !ok || rec.Status != "Pending" || rec.HostData != hex.EncodeToString(codeA[:]) || rec.JoinedBy != nodes.JoinedByHostData || rec.Address != "10.0.0.1:443" {
		t.Fatalf("record %+v", rec)
	}
	// The same key again is a poll: no entry.
	eff, err = execute(t, st, a.join(t, "10.0.0.1:443", codeA, a.der), virtual, 3)
	if err != nil || !eff.Replayed {
		t.Fatalf("poll: %v %+v", err, eff)
	}
	// A new key on the live node's address.
	b := newNode(t)
	if _, err := execute(t, st, b.join(t, "10.0.0.1:443", codeA, b.der), virtual, 3); engine.AsError(err).Code != nodes.CodeNodeAlreadyExists {
		t.Fatalf("same address: %v", err)
	}
	// Retired: a poll is refused, and the address is free again.
	rec.Status = nodes.StatusRetired
	v, _ := json.Marshal(rec)
	st.Apply(engine.WriteSet{{Table: engine.TableNodes, Key: a.id, Value: v}})
	if _, err := execute(t, st, a.join(t, "10.0.0.1:443", codeA, a.der), virtual, 3); engine.AsError(err).Code != nodes.CodeInvalidNodeState {
		t.Fatalf("retired poll: %v", err)
	}
	if _, err := execute(t, st, b.join(t, "10.0.0.1:443", codeA, b.der), virtual, 3); err != nil {
		t.Fatalf("address of a retired node: %v", err)
	}
	// Delete: only once committed.
	if _, err := (nodes.Delete{NodeID: a.id}).Execute(st, engine.Facts{}); engine.AsError(err).Code != nodes.CodeNodeNotRetiredCommitted {
		t.Fatalf("uncommitted delete: %v", err)
	}
	if _, err := (nodes.Delete{NodeID: b.id, RetiredCommitted: true}).Execute(st, engine.Facts{}); engine.AsError(err).Code != nodes.CodeNodeNotRetiredCommitted {
		t.Fatalf("delete of a pending node: %v", err)
	}
	eff, err = nodes.Delete{NodeID: a.id, RetiredCommitted: true}.Execute(st, engine.Facts{})
	if err != nil || len(eff.Writes) != 1 || !eff.Writes[0].Delete {
		t.Fatalf("delete: %v %+v", err, eff)
	}
	st.Apply(eff.Writes)
	if _, err := (nodes.Delete{NodeID: a.id, RetiredCommitted: true}).Execute(st, engine.Facts{}); engine.AsError(err).Code != nodes.CodeNodeNotFound {
		t.Fatalf("second delete: %v", err)
	}
}

func TestJoinRefusals(t *testing.T) {
	other := sha256.Sum256([]byte("code B"))
	for _, tc := range []struct {
		name     string
		settings nodes.Settings
		hostData [32]byte
		bindSelf bool
		state    func(constitution.MemState)
		reason   error
	}{
		{"virtual on a non-virtual service", nodes.Settings{}, codeA, true, nil, attest.ErrVirtualRefused},
		{"report data does not bind the key", nodes.Settings{Virtual: true}, codeA, false, nil, attest.ErrReportData},
		{"untrusted measurement", nodes.Settings{Virtual: true}, codeA, true, func(st constitution.MemState) {
			st.Apply(engine.WriteSet{{Table: nodes.TableVirtualMeasurements, Key: hex.EncodeToString(measurement), Delete: true}})
		}, attest.ErrMeasurement},
		{"untrusted host data, no statement", nodes.Settings{Virtual: true}, other, true, nil, nodes.ErrHostDataUntrusted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := governed()
			if tc.state != nil {
				tc.state(st)
			}
			n := newNode(t)
			bind := n.der
			if !tc.bindSelf {
				bind = newNode(t).der
			}
			_, err := execute(t, st, n.join(t, "10.0.0.2:443", tc.hostData, bind), tc.settings, 2)
			e := engine.AsError(err)
			if !errors.Is(err, tc.reason) || e.Code != nodes.CodeInvalidQuote || e.Kind != engine.KindUnauthorized {
				t.Fatalf("got %v, want %v", err, tc.reason)
			}
			if _, ok, _ := nodes.ReadRecord(st, n.id); ok {
				t.Fatal("a refused join wrote its node")
			}
		})
	}
}

func TestParseJoinRefusesBadRequests(t *testing.T) {
	n := newNode(t)
	good := n.join(t, "10.0.0.3:443", codeA, n.der)
	if _, err := nodes.ParseJoin(good); err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte{}, good...)
	tampered[len(tampered)-1] ^= 1
	if _, err := nodes.ParseJoin(tampered); !errors.Is(err, nodes.ErrSignature) {
		t.Fatalf("tampered: %v", err)
	}
	for name, req := range map[string]nodes.JoinRequest{
		"role":      {Role: "primary", Address: "h:1", Attestation: json.RawMessage(`{}`)},
		"address":   {Role: "service", Address: "nohost", Attestation: json.RawMessage(`{}`)},
		"port":      {Role: "service", Address: "h:0", Attestation: json.RawMessage(`{}`)},
		"no quote":  {Role: "service", Address: "h:1"},
		"node data": {Role: "service", Address: "h:1", Attestation: json.RawMessage(`{}`), NodeData: json.RawMessage(`"` + strings.Repeat("x", nodes.MaxNodeDataBytes) + `"`)},
	} {
		raw, err := nodes.SignJoin(n.key, req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nodes.ParseJoin(raw); !errors.Is(err, nodes.ErrField) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := nodes.ParseJoin([]byte("not cose")); !errors.Is(err, nodes.ErrEnvelope) {
		t.Fatalf("garbage: %v", err)
	}
}

// BenchmarkJoin is one virtual join: the stateless verification and the
// decision against a state trusting its host data.
func BenchmarkJoin(b *testing.B) {
	t := &testing.T{}
	st := governed()
	n := newNode(t)
	raw := n.join(t, "10.0.0.9:443", codeA, n.der)
	for b.Loop() {
		j, err := nodes.VerifyJoin(raw, nodes.Settings{Virtual: true}, at, constitution.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := j.Execute(st, engine.Facts{TxID: engine.TxID{View: 1, Seqno: 2}, Time: at}); err != nil {
			b.Fatal(err)
		}
	}
}

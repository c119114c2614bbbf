package engine

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"syscall"
	"testing"
)

func testSigner(seed byte) *NodeSigner {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return NewNodeSigner(ed25519.NewKeyFromSeed(s))
}

// authEntry is an entry at seq, encoded and signed by node.
func authEntry(t testing.TB, node *NodeSigner, kind EntryKind, seq uint64, writes ...Write) LedgerMsg {
	e := &Entry{Kind: kind, View: 1, Seqno: seq, TimeMillis: 1000, Writes: writes}
	e.Seal()
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return LedgerMsg{Seq: seq, Subject: e.Subject(), Data: b, Node: node.ID(), Auth: node.Sign(seq, e.Subject(), b)}
}

func TestVoidLeafIsPinned(t *testing.T) {
	if got := hex.EncodeToString(VoidLeaf[:]); got != "9712ec4f4b66a7a77122e052de8ce1b013dd9ddd8ee3fb1cc5817643f0746c14" {
		t.Fatalf("void leaf %s", got)
	}
	v := VoidEntry(7, 2, 99, errors.New("why"))
	if v.Leaf() != VoidLeaf || v.Seqno != 7 || v.View != 2 || len(v.Writes) != 0 || v.VoidReason != "why" {
		t.Fatalf("void entry %+v", v)
	}
	if err := KindVoid.Validate(); err == nil {
		t.Fatal("a void kind decodes: a message could claim to be void")
	}
}

func TestOpenEntry(t *testing.T) {
	node, other := testSigner(1), testSigner(2)
	trusted := NewTrustedNodes()
	trusted.Observe(WriteSet{ServiceNodeRecord(node.Public(), nil).Write()})
	good := authEntry(t, node, KindStatement, 5)
	with := func(change func(*LedgerMsg)) LedgerMsg {
		m := good
		change(&m)
		return m
	}
	pending := ServiceNodeRecord(other.Public(), nil)
	pending.Status = "Pending"
	participant := ServiceNodeRecord(other.Public(), nil)
	participant.Role = "participant"
	genesis := authEntry(t, node, KindGenesis, 1, ServiceNodeRecord(node.Public(), nil).Write())
	for _, tc := range []struct {
		name    string
		trusted *TrustedNodes
		m       LedgerMsg
		want    error // nil: authenticated
	}{
		{"authenticated", trusted, good, nil},
		{"missing node header", trusted, with(func(m *LedgerMsg) { m.Node = "" }), ErrAuthMissing},
		{"missing auth header", trusted, with(func(m *LedgerMsg) { m.Auth = "" }), ErrAuthMissing},
		{"node id not hex", trusted, with(func(m *LedgerMsg) { m.Node = strings.ToUpper(m.Node) }), ErrAuthMalformed},
		{"signature not base64", trusted, with(func(m *LedgerMsg) { m.Auth = strings.Repeat("*", len(m.Auth)) }), ErrAuthMalformed},
		{"signature too short", trusted, with(func(m *LedgerMsg) { m.Auth = m.Auth[:40] }), ErrAuthMalformed},
		{"unknown node", trusted, authEntry(t, other, KindStatement, 5), ErrUnknownNode},
		{"wrong key for the node id", trusted, with(func(m *LedgerMsg) { m.Auth = other.Sign(5, m.Subject, m.Data) }), ErrBadSignature},
		{"wrong sequence (a replay)", trusted, with(func(m *LedgerMsg) { m.Seq = 6 }), ErrBadSignature},
		{"wrong subject", trusted, with(func(m *LedgerMsg) { m.Subject = "gavel.ledger.proposal" }), ErrBadSignature},
		{"data changed", trusted, with(func(m *LedgerMsg) { m.Data = append([]byte{}, m.Data...); m.Data[len(m.Data)-1] ^= 1 }), ErrBadSignature},
		{"signed for its wrong place", trusted, with(func(m *LedgerMsg) { m.Seq = 6; m.Auth = node.Sign(6, m.Subject, m.Data) }), ErrMisplaced},
		{"garbage, signed", trusted, with(func(m *LedgerMsg) { m.Data = []byte("x"); m.Auth = node.Sign(5, m.Subject, m.Data) }), nil},
		{"genesis records its signer", NewTrustedNodes(), genesis, nil},
		{"genesis signed by a node it does not record", NewTrustedNodes(), with(func(m *LedgerMsg) {
			*m = genesis
			m.Node, m.Auth = other.ID(), other.Sign(1, m.Subject, m.Data)
		}), ErrUnknownNode},
		{"genesis recording a pending node", NewTrustedNodes(), authEntry(t, other, KindGenesis, 1, pending.Write()), ErrUnknownNode},
		{"genesis recording a participant", NewTrustedNodes(), authEntry(t, other, KindGenesis, 1, participant.Write()), ErrUnknownNode},
		{"first entry not genesis", trusted, authEntry(t, node, KindStatement, 1), ErrMisplaced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := tc.trusted.OpenEntry(tc.m)
			switch {
			case tc.name == "garbage, signed":
				// authenticated, but not an entry: still void, by the decoder
				if err == nil || AsError(err).Code != "InvalidEntry" {
					t.Fatalf("got %v", err)
				}
			case tc.want == nil && (err != nil || e == nil || e.Seqno != tc.m.Seq):
				t.Fatalf("refused: %v", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// The trusted set follows the nodes table: a retired node, a deleted one,
// or a record whose key is not its id is not trusted.
func TestTrustedNodesFollowTheNodesTable(t *testing.T) {
	node, other := testSigner(1), testSigner(2)
	tn := NewTrustedNodes()
	tn.Observe(WriteSet{ServiceNodeRecord(node.Public(), nil).Write(), ServiceNodeRecord(other.Public(), nil).Write()})
	if !tn.Trusts(node.ID()) || !tn.Trusts(other.ID()) {
		t.Fatal("trusted service nodes not trusted")
	}
	retired := ServiceNodeRecord(node.Public(), nil)
	retired.Status = "Retired"
	tn.Observe(WriteSet{retired.Write(), {Table: TableNodes, Key: other.ID(), Delete: true}})
	if tn.Trusts(node.ID()) || tn.Trusts(other.ID()) {
		t.Fatal("a retired or deleted node is still trusted")
	}
	swapped := ServiceNodeRecord(other.Public(), nil).Write()
	swapped.Key = node.ID() // other's key under node's id
	tn.Observe(WriteSet{swapped})
	if tn.Trusts(node.ID()) {
		t.Fatal("a record whose key is not its node id is trusted")
	}
}

func FuzzParseAuthHeaders(f *testing.F) {
	n := testSigner(1)
	f.Add(n.ID(), n.Sign(1, "gavel.ledger.statement", nil))
	f.Add("", "")
	f.Add(strings.Repeat("g", 64), strings.Repeat("A", 88))
	f.Fuzz(func(t *testing.T, node, auth string) {
		id, sig, err := ParseAuthHeaders(node, auth)
		if err != nil {
			if !errors.Is(err, ErrAuthMissing) && !errors.Is(err, ErrAuthMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if id != node || len(sig) != ed25519.SignatureSize || base64.StdEncoding.EncodeToString(sig) != auth {
			t.Fatalf("accepted %q %q as %q %x", node, auth, id, sig)
		}
	})
}

// BenchmarkEntrySign and BenchmarkEntryVerify are the per-entry cost of
// authentication, on an entry of a typical statement's size. cpu-ns/op is
// the process's CPU time per op, which a machine shared with other work
// inflates less than ns/op.
func BenchmarkEntrySign(b *testing.B) {
	n, data := testSigner(1), make([]byte, 1632)
	defer reportCPU(b)()
	for i := 0; b.Loop(); i++ {
		n.Sign(uint64(i), "gavel.ledger.statement", data)
	}
}

func BenchmarkEntryVerify(b *testing.B) {
	n := testSigner(1)
	tn := NewTrustedNodes()
	tn.Observe(WriteSet{ServiceNodeRecord(n.Public(), nil).Write()})
	m := authEntry(b, n, KindStatement, 5, Write{Table: "t", Key: "k", Value: make([]byte, 1500)})
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := tn.Authenticate(m); err != nil {
			b.Fatal(err)
		}
	}
}

func reportCPU(b *testing.B) func() {
	cpu := func() int64 {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return ru.Utime.Nano() + ru.Stime.Nano()
	}
	start := cpu()
	return func() { b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op") }
}

// Whatever a message holds, opening it never panics, and what it accepts
// claims the message's own place.
func FuzzOpenEntry(f *testing.F) {
	node := testSigner(1)
	trusted := NewTrustedNodes()
	trusted.Observe(WriteSet{ServiceNodeRecord(node.Public(), nil).Write()})
	good := authEntry(f, node, KindStatement, 5, Write{Table: "t", Key: "k", Value: []byte("v")})
	f.Add(good.Seq, good.Subject, good.Data, good.Node, good.Auth)
	f.Add(uint64(1), "gavel.ledger.genesis", good.Data, good.Node, good.Auth)
	f.Add(uint64(5), "gavel.ledger.statement", []byte("garbage"), "", "")
	f.Fuzz(func(t *testing.T, seq uint64, subject string, data []byte, nodeID, auth string) {
		m := LedgerMsg{Seq: seq, Subject: subject, Data: data, Node: nodeID, Auth: auth}
		e, err := trusted.OpenEntry(m)
		if err == nil && (e == nil || e.Seqno != seq || e.Subject() != subject) {
			t.Fatalf("accepted %+v as %+v", m, e)
		}
		if err != nil && e != nil {
			t.Fatalf("an entry with an error: %v", err)
		}
	})
}

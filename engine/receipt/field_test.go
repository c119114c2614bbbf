package receipt

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
)

// The field data is a real transparent statement issued by an Azure CCF
// (SCITT) service, with the service's published certificates, copied into
// the repository with its licence.
const fieldDir = "../../testdata/field"

type fieldData struct {
	ts   []byte
	keys KeySet
}

func loadField(t testing.TB) fieldData {
	t.Helper()
	ts, err := os.ReadFile(filepath.Join(fieldDir, "azure-uvm-0.2.10.transparent-statement.cose"))
	if err != nil {
		t.Fatal(err)
	}
	params, err := os.ReadFile(filepath.Join(fieldDir, "azure-uvm-0.2.10.service-parameters.json"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseServiceParameters(params)
	if err != nil {
		t.Fatal(err)
	}
	return fieldData{ts: ts, keys: keys}
}

// fieldNow is after the x5chain leaf expired (May 2026): the chain is judged
// at the statement's iat, as CCF does.
var fieldNow = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

func mustHex(s string) engine.Digest {
	var d engine.Digest
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		panic("bad hex digest")
	}
	copy(d[:], b)
	return d
}

func TestFieldTransparentStatementVerifies(t *testing.T) {
	f := loadField(t)
	if f.keys.Len() != 2 {
		t.Fatalf("eight certificates over two service keys, got %d keys", f.keys.Len())
	}
	res, err := VerifyTransparent(f.ts, f.keys, fieldNow)
	if err != nil {
		t.Fatalf("VerifyTransparent: %v", err)
	}
	st := res.Statement
	checks := []struct {
		name      string
		got, want any
	}{
		{"alg", st.Alg, cose.PS384},
		{"issuer", st.Issuer, "did:x509:0:sha256:I__iuL25oXEVFdTP_aBLx_eT1RPHbCQ_ECBQfYZpt9s::eku:1.3.6.1.4.1.311.76.59.1.2"},
		{"subject", st.Subject, "ContainerPlat-AMD-UVM"},
		{"iat", st.IssuedAt, time.Unix(1766437887, 0).UTC()},
		{"chain length", len(st.Chain), 3},
		{"payload-hash-alg", st.PayloadHashAlg, int64(-43)},
		{"preimage content type", st.PreimageContentType, "application/octet-stream"},
		{"payload size", len(st.Payload), 48},
		{"receipts", len(res.Receipts), 1},
		{"claims digest", res.ClaimsDigest, mustHex("a60138fb1591fe6c433b41128b0349cf3636bce74fc8c2e7140bc13b74612649")},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	svn, ok, err := st.Claims.Int("svn")
	if !ok || err != nil || svn != 104 {
		t.Errorf("svn claim = %d, %v, %v; want 104", svn, ok, err)
	}
	r := res.Receipts[0]
	if r.Alg != cose.ES384 || r.TxID != (engine.TxID{View: 458, Seqno: 12441}) || r.IssuedAt != time.Unix(1766437888, 0).UTC() {
		t.Errorf("receipt alg %v txid %v iat %v", r.Alg, r.TxID, r.IssuedAt)
	}
	if string(r.KeyID) != "da7694f16def5a056ca96afb21e89a9450e4cc875e2de351da76d99544a3e849" {
		t.Errorf("kid = %s", r.KeyID)
	}
	if leafTx, err := r.Leaf.TxID(); err != nil || leafTx != (engine.TxID{View: 458, Seqno: 12440}) {
		t.Errorf("leaf txid = %v, %v", leafTx, err)
	}
	if r.Issuer != "esrp-cts-db.confidential-ledger.azure.com" || r.Subject != "scitt.ccf.signature.v1" || len(r.Path) != 5 {
		t.Errorf("receipt iss %q sub %q path %d", r.Issuer, r.Subject, len(r.Path))
	}
}

// The claims digest is SHA-256 of the tagged statement with an empty
// unprotected header; the untagged form gives another digest.
func TestFieldClaimsDigestIsTaggedWithEmptyUnprotected(t *testing.T) {
	f := loadField(t)
	got, err := cose.ClaimsDigest(f.ts)
	if err != nil {
		t.Fatal(err)
	}
	receipts, err := Receipts(f.ts)
	if err != nil || len(receipts) != 1 {
		t.Fatalf("receipts: %d, %v", len(receipts), err)
	}
	r, err := Parse(receipts[0])
	if err != nil {
		t.Fatal(err)
	}
	if got != r.Leaf.ClaimsDigest {
		t.Fatalf("claims digest %x, receipt leaf has %x", got, r.Leaf.ClaimsDigest)
	}
	// Re-embedding the receipt into the bare statement reproduces the
	// claims digest and a statement that verifies.
	m, err := cose.DecodeSign1(f.ts)
	if err != nil {
		t.Fatal(err)
	}
	m.Unprotected = nil
	bare, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(bare, f.ts) {
		t.Fatal("bare statement still has the receipt")
	}
	again, err := Embed(bare, receipts[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, f.ts) {
		t.Error("embedding the receipt again does not reproduce the field bytes")
	}
	if _, err := VerifyTransparent(bare, f.keys, fieldNow); engine.AsError(err).Code != CodeInvalidReceipt {
		t.Errorf("statement without receipts: %v, want InvalidReceipt", err)
	}
}

// Every single-byte change to a signed or proven byte makes verification
// fail: the statement signature, its payload, the receipt signature, each
// proof hash and the leaf's digests.
func TestFieldFlipEveryByteFails(t *testing.T) {
	f := loadField(t)
	st, err := cose.ParseStatement(f.ts)
	if err != nil {
		t.Fatal(err)
	}
	receipts, _ := Receipts(f.ts)
	r, err := Parse(receipts[0])
	if err != nil {
		t.Fatal(err)
	}
	rOff := bytes.Index(f.ts, receipts[0])
	if rOff < 0 {
		t.Fatal("receipt bytes not found in the statement")
	}
	type span struct {
		name     string
		off, len int
	}
	find := func(name string, within []byte, base int, needle []byte) span {
		i := bytes.Index(within, needle)
		if i < 0 || bytes.Index(within[i+1:], needle) >= 0 {
			t.Fatalf("%s: not found exactly once", name)
		}
		return span{name, base + i, len(needle)}
	}
	spans := []span{
		find("statement signature", f.ts, 0, st.Signature),
		find("statement payload", f.ts, 0, st.Payload),
		find("receipt signature", receipts[0], rOff, r.Signature),
		find("leaf write set digest", receipts[0], rOff, r.Leaf.WriteSetDigest[:]),
		find("leaf claims digest", receipts[0], rOff, r.Leaf.ClaimsDigest[:]),
	}
	for i, p := range r.Path {
		spans = append(spans, find("proof hash "+string(rune('0'+i)), receipts[0], rOff, p.Hash[:]))
	}
	if _, err := VerifyTransparent(f.ts, f.keys, fieldNow); err != nil {
		t.Fatalf("unchanged statement fails: %v", err)
	}
	tampered := bytes.Clone(f.ts)
	for _, s := range spans {
		for i := s.off; i < s.off+s.len; i++ {
			tampered[i] ^= 0x01
			if _, err := VerifyTransparent(tampered, f.keys, fieldNow); err == nil {
				t.Errorf("%s: flipping byte %d still verifies", s.name, i-s.off)
			} else if engine.KindOf(err) != engine.KindInvalid {
				t.Errorf("%s: byte %d: error %v is not KindInvalid", s.name, i-s.off, err)
			}
			tampered[i] ^= 0x01
		}
	}
}

func TestFieldUnknownServiceKey(t *testing.T) {
	f := loadField(t)
	// Only the certificates of the other service key.
	other, err := NewKeySet()
	if err != nil {
		t.Fatal(err)
	}
	for kid, k := range f.keys.keys {
		if kid != "da7694f16def5a056ca96afb21e89a9450e4cc875e2de351da76d99544a3e849" {
			if err := other.Add(k); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, err = VerifyTransparent(f.ts, other, fieldNow)
	if engine.AsError(err).Code != CodeUnknownServiceKey {
		t.Fatalf("got %v, want UnknownServiceKey", err)
	}
}

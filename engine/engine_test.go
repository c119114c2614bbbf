package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestParseTxID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want TxID
		ok   bool
	}{
		{"2.15", TxID{2, 15}, true},
		{"1.1", TxID{1, 1}, true},
		{"18446744073709551615.1", TxID{18446744073709551615, 1}, true},
		{"0.1", TxID{}, false},
		{"1.0", TxID{}, false},
		{"01.2", TxID{}, false},
		{"1.", TxID{}, false},
		{".1", TxID{}, false},
		{"1", TxID{}, false},
		{"1.2.3", TxID{}, false},
		{"a.b", TxID{}, false},
		{"-1.2", TxID{}, false},
		{"+1.2", TxID{}, false},
		{"18446744073709551616.1", TxID{}, false},
		{"", TxID{}, false},
	} {
		got, err := ParseTxID(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseTxID(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && KindOf(err) != KindInvalid {
			t.Errorf("ParseTxID(%q): error kind %v, want KindInvalid", tc.in, KindOf(err))
		}
		if err == nil && got.String() != tc.in {
			t.Errorf("round trip %q → %q", tc.in, got.String())
		}
	}
}

func FuzzParseTxID(f *testing.F) {
	for _, s := range []string{"2.15", "0.0", "1.", "99999999999999999999.1", "1.2.3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tx, err := ParseTxID(s)
		if err != nil {
			return
		}
		if tx.View == 0 || tx.Seqno == 0 || tx.String() != s {
			t.Fatalf("accepted %q as %v", s, tx)
		}
	})
}

func TestCommitEvidenceAndLeaf(t *testing.T) {
	var nonce Digest
	for i := range nonce {
		nonce[i] = byte(i)
	}
	ce := CommitEvidence(TxID{2, 42}, nonce)
	want := "ce:2.42:" + hex.EncodeToString(nonce[:])
	if ce != want {
		t.Fatalf("commit evidence %q, want %q", ce, want)
	}
	var wsd, cd Digest
	wsd[0], cd[31] = 1, 2
	ceh := sha256.Sum256([]byte(ce))
	manual := sha256.Sum256(bytes.Join([][]byte{wsd[:], ceh[:], cd[:]}, nil))
	if LeafHash(wsd, ce, cd) != manual {
		t.Fatal("leaf hash differs from SHA-256(wsd ‖ SHA-256(ce) ‖ cd)")
	}
	l, r := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	if HashChildren(l, r) != sha256.Sum256(append(append([]byte{}, l...), r...)) {
		t.Fatal("internal node is not SHA-256(l ‖ r)")
	}
}

func TestWriteSetCanonical(t *testing.T) {
	a := WriteSet{
		{Table: "b", Key: "1", Value: []byte("x")},
		{Table: "a", Key: "2", Value: []byte("y")},
		{Table: "a", Key: "1", Value: []byte("old")},
		{Table: "a", Key: "1", Value: []byte("new")},
		{Table: "b", Key: "0", Delete: true},
	}
	got := a.Canonical()
	want := WriteSet{
		{Table: "a", Key: "1", Value: []byte("new")},
		{Table: "a", Key: "2", Value: []byte("y")},
		{Table: "b", Key: "0", Delete: true},
		{Table: "b", Key: "1", Value: []byte("x")},
	}
	if !got.Equal(want) || len(got) != len(want) {
		t.Fatalf("canonical = %+v", got)
	}
	// Order of input does not change the digest; content does.
	b := WriteSet{a[4], a[2], a[3], a[1], a[0]}
	if a.Digest() != b.Digest() {
		t.Fatal("digest depends on input order")
	}
	c := append(WriteSet{}, a...)
	c[1].Value = []byte("z")
	if a.Digest() == c.Digest() {
		t.Fatal("digest ignores a value")
	}
	if v, ok := a.Value("a", "1"); !ok || string(v) != "new" {
		t.Fatalf("Value = %q %v", v, ok)
	}
	if _, ok := a.Value("b", "0"); ok {
		t.Fatal("deleted key has a value")
	}
}

func TestEntryRoundTrip(t *testing.T) {
	e := &Entry{Kind: KindStatement, View: 3, Seqno: 9, TimeMillis: 1700000000123, Input: []byte{0xd2, 0x84},
		Writes: WriteSet{{Table: TableStatements, Key: "k", Value: []byte{1}}}, Result: []byte(`{"txid":"3.9"}`)}
	e.Nonce[0] = 7
	e.ClaimsDigest[5] = 9
	e.Seal()
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := e.Encode()
	if !bytes.Equal(b, b2) {
		t.Fatal("encoding is not deterministic")
	}
	d, err := DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Leaf() != e.Leaf() || d.TxID() != e.TxID() || !bytes.Equal(d.Input, e.Input) || d.Subject() != "gavel.ledger.statement" {
		t.Fatalf("decoded %+v", d)
	}
	// A write set that does not match its digest is refused.
	e.Writes[0].Value = []byte{2}
	bad, _ := e.Encode()
	if _, err := DecodeEntry(bad); err == nil || AsError(err).Code != "WriteSetDigestMismatch" {
		t.Fatalf("tampered write set: %v", err)
	}
}

func FuzzDecodeEntry(f *testing.F) {
	e := &Entry{Kind: KindSignature, View: 1, Seqno: 2, Writes: WriteSet{{Table: TableSignatures, Value: []byte{1, 2}}}}
	e.Seal()
	b, _ := e.Encode()
	f.Add(b)
	f.Add([]byte{0xa0})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeEntry(b)
		if err != nil {
			if AsError(err).Kind != KindInvalid {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if d.WriteSetDigest != d.Writes.Digest() {
			t.Fatal("accepted an entry whose digest does not match")
		}
		if d.Kind.Validate() != nil || !d.Writes.Equal(d.Writes.Canonical()) || len(d.Writes) != len(d.Writes.Canonical()) {
			t.Fatalf("accepted an entry of kind %q with a non-canonical write set", d.Kind)
		}
	})
}

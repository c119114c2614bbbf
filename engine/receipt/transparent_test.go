package receipt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/didx509"
	"github.com/gavelhq/gavel/engine/didx509/devca"
)

// register plays a service: the statement's claims digest becomes leaf 2 of
// a five-leaf tree, whose root svc signs; it returns the receipt.
func register(t *testing.T, svc *Signer, statement []byte, seqno uint64) []byte {
	t.Helper()
	cd, err := cose.ClaimsDigest(statement)
	if err != nil {
		t.Fatal(err)
	}
	leaves, hashes, root := tree(5, map[int]engine.Digest{2: cd})
	sig, err := svc.SignRoot(root, engine.TxID{View: 1, Seqno: seqno}, testNow, "", "")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := Build(sig, leaves[2], naivePath(hashes, 2))
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func signStatement(t *testing.T, payload string) ([]byte, *devca.Chain) {
	t.Helper()
	c, err := devca.New(devca.Options{Now: testNow.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	st, err := cose.SignStatement(c.LeafKey, c.Certs, c.Issuer(), "gavel/host-data", "application/octet-stream", []byte(payload), testNow)
	if err != nil {
		t.Fatal(err)
	}
	return st, c
}

func TestEmbedAndVerifyTransparent(t *testing.T) {
	statement, _ := signStatement(t, "host data")
	other, _ := signStatement(t, "other host data")
	svcA, svcB := newService(t, elliptic.P384()), newService(t, elliptic.P256())
	both, _ := NewKeySet(svcA.Public(), svcB.Public())
	onlyA, _ := NewKeySet(svcA.Public())

	ts, err := Embed(statement, register(t, svcA, statement, 7))
	if err != nil {
		t.Fatal(err)
	}
	ts2, err := Embed(ts, register(t, svcB, statement, 9))
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string][]byte{"one receipt": ts, "two receipts": ts2} {
		d, err := cose.ClaimsDigest(raw)
		if err != nil || d != sha256.Sum256(statement) {
			t.Fatalf("%s: embedding changed the claims digest", name)
		}
	}
	res, err := VerifyTransparent(ts2, both, testNow)
	if err != nil {
		t.Fatalf("VerifyTransparent: %v", err)
	}
	if len(res.Receipts) != 2 || res.Receipts[0].TxID.Seqno != 7 || res.Receipts[1].TxID.Seqno != 9 ||
		res.ClaimsDigest != sha256.Sum256(statement) || string(res.Statement.Payload) != "host data" {
		t.Fatalf("result: %+v", res)
	}
	if got, err := Receipts(ts2); err != nil || len(got) != 2 {
		t.Fatalf("Receipts: %d, %v", len(got), err)
	}

	foreign, err := Embed(statement, register(t, svcA, other, 7))
	if err != nil {
		t.Fatal(err)
	}
	tamperedStatement := bytes.Clone(ts)
	tamperedStatement[len(tamperedStatement)-1] ^= 1 // the statement signature ends the message
	cases := []struct {
		name string
		ts   []byte
		keys KeySet
		code string
	}{
		{"one service", ts, onlyA, ""},
		{"second receipt from an untrusted service", ts2, onlyA, CodeUnknownServiceKey},
		{"no trusted key", ts, KeySet{}, CodeUnknownServiceKey},
		{"receipt for another statement", foreign, both, CodeClaimsDigestMismatch},
		{"no receipt", statement, both, CodeInvalidReceipt},
		{"statement signature broken", tamperedStatement, both, cose.CodeInvalidSignature},
		{"not a statement", []byte("x"), both, cose.CodeInvalidStatement},
		{"receipts header not an array", withUnprotected(t, statement, mustCBOR(5)), both, CodeInvalidReceipt},
		{"receipts header holds text", withUnprotected(t, statement, mustCBOR([]string{"r"})), both, CodeInvalidReceipt},
		{"receipts header holds junk", withUnprotected(t, statement, mustCBOR([][]byte{{1}})), both, CodeInvalidReceipt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyTransparent(tc.ts, tc.keys, testNow)
			if codeOf(err) != tc.code {
				t.Fatalf("VerifyTransparent = %v, want code %q", err, tc.code)
			}
		})
	}
	// The statement is judged at its iat: a later now does not matter.
	if _, err := VerifyTransparent(ts, onlyA, testNow.AddDate(10, 0, 0)); err != nil {
		t.Fatalf("ten years later: %v", err)
	}
}

func withUnprotected(t *testing.T, statement, receipts []byte) []byte {
	t.Helper()
	m, err := cose.DecodeSign1(statement)
	if err != nil {
		t.Fatal(err)
	}
	m.Unprotected = cose.Header{}
	m.Unprotected.Set(cose.LabelReceipts, receipts)
	out, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEmbedRefuses(t *testing.T) {
	statement, _ := signStatement(t, "p")
	svc := newService(t, elliptic.P256())
	rc := register(t, svc, statement, 3)
	if _, err := Embed(statement[1:], rc); codeOf(err) != cose.CodeInvalidStatement {
		t.Errorf("untagged statement: %v", err)
	}
	if _, err := Embed(statement, statement); codeOf(err) != CodeInvalidReceipt {
		t.Errorf("a statement as receipt: %v", err)
	}
	if _, err := Embed(withUnprotected(t, statement, mustCBOR("x")), rc); codeOf(err) != CodeInvalidReceipt {
		t.Errorf("malformed 394: %v", err)
	}
	same, err := Embed(statement)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := Receipts(same); len(got) != 0 {
		t.Errorf("Embed without receipts added %d", len(got))
	}
}

func TestKeySets(t *testing.T) {
	a, b := newService(t, elliptic.P384()), newService(t, elliptic.P256())
	spki, _ := x509.MarshalPKIXPublicKey(b.Public())
	pemData := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Certificate().Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})...)
	ks, err := KeySetFromPEM(pemData)
	if err != nil {
		t.Fatal(err)
	}
	if ks.Len() != 2 {
		t.Fatalf("Len = %d", ks.Len())
	}
	for _, s := range []*Signer{a, b} {
		k, ok := ks.Lookup(s.KeyID())
		if !ok || !k.(*ecdsa.PublicKey).Equal(s.Public()) {
			t.Fatal("Lookup by kid")
		}
	}
	if _, ok := ks.Lookup([]byte("nope")); ok {
		t.Fatal("unknown kid found")
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	bad := map[string][]byte{
		"empty":          nil,
		"not PEM":        []byte("hello"),
		"trailing junk":  append(bytes.Clone(pemData), "junk"...),
		"private key":    priv,
		"bad cert":       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}),
		"bad public key": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}),
	}
	for name, data := range bad {
		if _, err := KeySetFromPEM(data); codeOf(err) != CodeInvalidServiceKey {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := NewKeySet(edPub); err != nil {
		t.Errorf("Ed25519 key refused: %v", err)
	}
	if _, err := NewKeySet("not a key"); codeOf(err) != CodeInvalidServiceKey {
		t.Errorf("string key: %v", err)
	}
}

func TestParseServiceParameters(t *testing.T) {
	a := newService(t, elliptic.P384())
	entry := func(der []byte, id, tree string) map[string]string {
		return map[string]string{"serviceCertificate": base64.StdEncoding.EncodeToString(der), "serviceId": id, "signatureAlgorithm": "ES256", "treeAlgorithm": tree}
	}
	sum := sha256.Sum256(a.Certificate().Raw)
	id := hex.EncodeToString(sum[:])
	doc := func(entries ...map[string]string) []byte {
		b, _ := json.Marshal(map[string]any{"parameters": entries})
		return b
	}
	ks, err := ParseServiceParameters(doc(entry(a.Certificate().Raw, id, "CCF"), entry(a.Certificate().Raw, "", "")))
	if err != nil || ks.Len() != 1 {
		t.Fatalf("ParseServiceParameters: %d keys, %v", ks.Len(), err)
	}
	bad := map[string][]byte{
		"not JSON":         []byte("{"),
		"no parameters":    doc(),
		"wrong serviceId":  doc(entry(a.Certificate().Raw, otherHex(id), "CCF")),
		"other tree":       doc(entry(a.Certificate().Raw, id, "RFC9162")),
		"not base64":       []byte(`{"parameters":[{"serviceCertificate":"***"}]}`),
		"not certificate":  doc(entry([]byte{1, 2}, "", "")),
		"wrong JSON shape": []byte(`{"parameters":{}}`),
	}
	for name, data := range bad {
		if _, err := ParseServiceParameters(data); codeOf(err) != CodeInvalidServiceParameters {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A statement signed with a chain whose issuer does not resolve fails in
// VerifyTransparent with the issuer error, receipts or not.
func TestVerifyTransparentIssuer(t *testing.T) {
	c, err := devca.New(devca.Options{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	did, _ := didx509.ForChain(c.Certs, didx509.EKU("1.2.3"))
	statement, err := cose.SignStatement(c.LeafKey, c.Certs, did, "s", "", []byte("p"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	svc := newService(t, elliptic.P256())
	ts, err := Embed(statement, register(t, svc, statement, 5))
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := NewKeySet(svc.Public())
	_, err = VerifyTransparent(ts, keys, testNow)
	if codeOf(err) != cose.CodeInvalidIssuer || !errors.Is(err, didx509.ErrPredicate) {
		t.Fatalf("VerifyTransparent = %v, want InvalidIssuer (predicate)", err)
	}
}

// otherHex changes the last digit of a hex string, whatever it was.
func otherHex(id string) string {
	last := "0"
	if id[len(id)-1] == '0' {
		last = "1"
	}
	return id[:len(id)-1] + last
}

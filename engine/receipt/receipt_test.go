package receipt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/transparency-dev/merkle/proof"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
)

// ccfHasher is CCF's tree for transparency-dev/merkle: leaves come hashed,
// internal nodes are SHA-256(l ‖ r).
type ccfHasher struct{}

func (ccfHasher) EmptyRoot() []byte           { h := sha256.Sum256(nil); return h[:] }
func (ccfHasher) HashLeaf(leaf []byte) []byte { return leaf }
func (ccfHasher) HashChildren(l, r []byte) []byte {
	h := engine.HashChildren(l, r)
	return h[:]
}
func (ccfHasher) Size() int { return sha256.Size }

// The hand-built tree and ComputeRoot agree with transparency-dev/merkle's
// RFC 6962 inclusion verification for every leaf of trees of 1 to 33 leaves.
func TestPathsAgreeWithTransparencyDev(t *testing.T) {
	for n := 1; n <= 33; n++ {
		leaves, hashes, root := tree(n, nil)
		for i := range leaves {
			path := naivePath(hashes, i)
			if got := ComputeRoot(leaves[i], path); got != root {
				t.Fatalf("n=%d i=%d: ComputeRoot differs from the tree root", n, i)
			}
			nodes := make([][]byte, len(path))
			for j, p := range path {
				nodes[j] = bytes.Clone(p.Hash[:])
			}
			if err := proof.VerifyInclusion(ccfHasher{}, uint64(i), uint64(n), hashes[i][:], nodes, root[:]); err != nil {
				t.Fatalf("n=%d i=%d: transparency-dev rejects the path: %v", n, i, err)
			}
		}
	}
}

func TestBuildVerifyRoundTrip(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		svc, other := newService(t, curve), newService(t, curve)
		for _, n := range []int{1, 2, 3, 5, 8, 13} {
			leaves, hashes, root := tree(n, nil)
			tx := engine.TxID{View: 2, Seqno: uint64(10 + n)}
			sig, err := svc.SignRoot(root, tx, testNow, "gavel.example", "gavel.signature")
			if err != nil {
				t.Fatal(err)
			}
			for i, leaf := range leaves {
				path := naivePath(hashes, i)
				rc, err := Build(sig, leaf, path)
				if err != nil {
					t.Fatal(err)
				}
				v, err := VerifyWithClaimsDigest(rc, svc.Public(), leaf.ClaimsDigest)
				if err != nil {
					t.Fatalf("%s n=%d i=%d: %v", curve.Params().Name, n, i, err)
				}
				if v.Root != root || v.TxID != tx || !v.IssuedAt.Equal(testNow) || v.Leaf != leaf ||
					!bytes.Equal(v.KeyID, svc.KeyID()) || v.Issuer != "gavel.example" || v.Subject != "gavel.signature" || len(v.Path) != len(path) {
					t.Fatalf("verified receipt differs: %+v", v)
				}
				if _, err := VerifyWithClaimsDigest(rc, svc.Public(), digestOf("other")); codeOf(err) != CodeClaimsDigestMismatch {
					t.Fatalf("wrong claims digest: %v", err)
				}
				if _, err := Verify(rc, other.Public()); codeOf(err) != CodeUnknownServiceKey {
					t.Fatalf("other service key: %v", err)
				}
				for name, bad := range tamperedProofs(leaves, hashes, i) {
					rc, err := Build(sig, bad.leaf, bad.path)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := Verify(rc, svc.Public()); codeOf(err) != cose.CodeInvalidSignature {
						t.Fatalf("n=%d i=%d %s: %v, want InvalidSignature", n, i, name, err)
					}
				}
			}
		}
	}
}

type proofInput struct {
	leaf Leaf
	path []PathElem
}

// tamperedProofs lists wrong (leaf, path) pairs for leaf i: every one leads
// to another root.
func tamperedProofs(leaves []Leaf, hashes []engine.Digest, i int) map[string]proofInput {
	path := naivePath(hashes, i)
	out := map[string]proofInput{}
	leaf := leaves[i]
	l := leaf
	l.WriteSetDigest[0] ^= 1
	out["write set digest"] = proofInput{l, path}
	l = leaf
	l.CommitEvidence += "0"
	out["commit evidence"] = proofInput{l, path}
	l = leaf
	l.ClaimsDigest[31] ^= 1
	out["claims digest"] = proofInput{l, path}
	out["extra step"] = proofInput{leaf, append(append([]PathElem{}, path...), PathElem{Hash: digestOf("x")})}
	for j := range path {
		p := append([]PathElem{}, path...)
		p[j].Left = !p[j].Left
		out["side "+string(rune('0'+j))] = proofInput{leaf, p}
		p = append([]PathElem{}, path...)
		p[j].Hash[j%32] ^= 0x40
		out["hash "+string(rune('0'+j))] = proofInput{leaf, p}
	}
	if len(path) > 0 {
		out["dropped step"] = proofInput{leaf, path[:len(path)-1]}
		out["another leaf's path"] = proofInput{leaf, naivePath(hashes, (i+1)%len(leaves))}
	}
	return out
}

func TestReceiptSignatureBytes(t *testing.T) {
	svc := newService(t, elliptic.P384())
	leaves, hashes, root := tree(4, nil)
	sig, err := svc.SignRoot(root, engine.TxID{View: 1, Seqno: 9}, testNow, "", "")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := Build(sig, leaves[2], naivePath(hashes, 2))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(rc)
	if err != nil {
		t.Fatal(err)
	}
	off := bytes.LastIndex(rc, r.Signature)
	for i := off; i < off+len(r.Signature); i++ {
		bad := bytes.Clone(rc)
		bad[i] ^= 0x02
		if _, err := Verify(bad, svc.Public()); codeOf(err) != cose.CodeInvalidSignature {
			t.Fatalf("signature byte %d flipped: %v", i-off, err)
		}
	}
	// The protected header is signed too.
	poff := bytes.Index(rc, r.Protected)
	bad := bytes.Clone(rc)
	bad[poff+bytes.Index(r.Protected, []byte("txid"))+5] ^= 0x01 // a digit of the txid
	if _, err := Verify(bad, svc.Public()); err == nil {
		t.Fatal("changed txid still verifies")
	}
}

// The signature entry has exactly the CCF profile's protected header.
func TestSignRootHeader(t *testing.T) {
	svc := newService(t, elliptic.P256())
	root := digestOf("root")
	sig, err := svc.SignRoot(root, engine.TxID{View: 3, Seqno: 42}, testNow, "svc", "sig")
	if err != nil {
		t.Fatal(err)
	}
	m, err := cose.DecodeSign1(sig)
	if err != nil {
		t.Fatal(err)
	}
	if m.Payload != nil || len(m.Unprotected) != 0 {
		t.Fatal("signature payload is not detached or unprotected header not empty")
	}
	spki, _ := x509.MarshalPKIXPublicKey(svc.Public())
	sum := sha256.Sum256(spki)
	kid := hex.EncodeToString(sum[:])
	want := mustCBOR(map[any]any{
		int64(1):   int64(cose.ES256),
		int64(4):   []byte(kid),
		int64(15):  map[int64]any{1: "svc", 2: "sig", 6: testNow.Unix()},
		int64(395): int64(2),
		"ccf.v1":   map[string]string{"txid": "3.42"},
	})
	if !bytes.Equal(m.Protected, want) {
		t.Fatalf("protected header\n%x\nwant\n%x", m.Protected, want)
	}
	if string(svc.KeyID()) != kid || string(KeyID(svc.Public())) != kid {
		t.Fatal("KeyID is not the hex SHA-256 of the SubjectPublicKeyInfo")
	}
	if err := cose.VerifySignature(cose.ES256, svc.Public(), m.Protected, root[:], m.Signature); err != nil {
		t.Fatalf("signature is not over the root: %v", err)
	}
	anon, _ := svc.SignRoot(root, engine.TxID{View: 3, Seqno: 42}, testNow, "", "")
	am, _ := cose.DecodeSign1(anon)
	ah, _ := am.ProtectedHeader()
	claims, _, _ := ah.Map(cose.LabelCWTClaims)
	if len(claims) != 1 {
		t.Fatalf("empty iss and sub are written: %v", claims)
	}
	if _, err := svc.SignRoot(root, engine.TxID{}, testNow, "", ""); err == nil {
		t.Fatal("signed transaction 0.0")
	}
	if KeyID("not a key") != nil {
		t.Fatal("KeyID of a non-key")
	}
}

func TestNewSignerRefuses(t *testing.T) {
	p256 := newService(t, elliptic.P256())
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cases := map[string]error{}
	_, cases["P-521"] = NewSigner(p521, p256.Certificate())
	_, cases["RSA"] = NewSigner(rsaKey, p256.Certificate())
	_, cases["Ed25519"] = NewSigner(edKey, p256.Certificate())
	_, cases["certificate of another key"] = NewSigner(otherKey, p256.Certificate())
	_, cases["no certificate"] = NewSigner(otherKey, nil)
	for name, err := range cases {
		if codeOf(err) != CodeInvalidServiceKey {
			t.Errorf("%s: %v, want InvalidServiceKey", name, err)
		}
	}
}

func TestLeafTxID(t *testing.T) {
	nonce := digestOf("n")
	cases := []struct {
		ce string
		tx engine.TxID
		ok bool
	}{
		{engine.CommitEvidence(engine.TxID{View: 458, Seqno: 12440}, nonce), engine.TxID{View: 458, Seqno: 12440}, true},
		{"ce:1.2:" + hex.EncodeToString(nonce[:16]), engine.TxID{}, false},
		{"ce:1.2:" + hex.EncodeToString(nonce[:31]) + "zz", engine.TxID{}, false},
		{"ce:0.2:" + hex.EncodeToString(nonce[:]), engine.TxID{}, false},
		{"1.2:" + hex.EncodeToString(nonce[:]), engine.TxID{}, false},
		{"", engine.TxID{}, false},
	}
	for _, c := range cases {
		tx, err := Leaf{CommitEvidence: c.ce}.TxID()
		if (err == nil) != c.ok || tx != c.tx {
			t.Errorf("TxID(%q) = %v, %v", c.ce, tx, err)
		}
	}
}

func TestBuildRefuses(t *testing.T) {
	svc := newService(t, elliptic.P256())
	leaves, hashes, root := tree(2, nil)
	sig, _ := svc.SignRoot(root, engine.TxID{View: 1, Seqno: 2}, testNow, "", "")
	long := leaves[0]
	long.CommitEvidence = string(make([]byte, 1025))
	empty := leaves[0]
	empty.CommitEvidence = ""
	stmt := mustCBOR(cbor.Tag{Number: 18, Content: []any{[]byte{0xa0}, map[int]int{}, []byte("p"), []byte("s")}})
	cases := map[string]struct {
		sig  []byte
		leaf Leaf
	}{
		"long commit evidence":  {sig, long},
		"empty commit evidence": {sig, empty},
		"attached payload":      {stmt, leaves[0]},
		"not COSE":              {[]byte("x"), leaves[0]},
	}
	for name, c := range cases {
		if _, err := Build(c.sig, c.leaf, naivePath(hashes, 0)); codeOf(err) != CodeInvalidReceipt {
			t.Errorf("%s: %v, want InvalidReceipt", name, err)
		}
	}
}

func BenchmarkVerifyReceipt(b *testing.B) {
	svc := newService(b, elliptic.P384())
	leaves, hashes, root := tree(1000, nil)
	sig, _ := svc.SignRoot(root, engine.TxID{View: 1, Seqno: 1001}, testNow, "", "")
	rc, err := Build(sig, leaves[517], naivePath(hashes, 517))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(rc, svc.Public()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkComputeRoot(b *testing.B) {
	leaves, hashes, _ := tree(1<<10, nil)
	path := naivePath(hashes, 700)
	b.ReportAllocs()
	for b.Loop() {
		_ = ComputeRoot(leaves[700], path)
	}
}

package receipt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/internal/testpki"
)

var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// newService makes a service identity: a key on curve and a self-signed
// certificate for it.
func newService(t testing.TB, curve elliptic.Curve) *Signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return serviceFromKey(t, key)
}

func serviceFromKey(t testing.TB, key crypto.Signer) *Signer {
	t.Helper()
	cert, err := testpki.SelfSigned(key, "CCF Service", testNow.Add(-time.Hour), testNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(key, cert)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fixedService is the P-384 service key committed under testdata, so that
// fuzz seeds stay verifiable across runs.
func fixedService(t testing.TB) *Signer {
	t.Helper()
	key, err := testpki.ReadKey("testdata/service-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	return serviceFromKey(t, key)
}

// The naive RFC 6962-shaped tree: split at the largest power of two below n.
func split(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

func naiveRoot(leaves []engine.Digest) engine.Digest {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := split(len(leaves))
	l, r := naiveRoot(leaves[:k]), naiveRoot(leaves[k:])
	return engine.HashChildren(l[:], r[:])
}

// naivePath is the inclusion path of leaf i, from the leaf upward.
func naivePath(leaves []engine.Digest, i int) []PathElem {
	if len(leaves) == 1 {
		return nil
	}
	k := split(len(leaves))
	if i < k {
		return append(naivePath(leaves[:k], i), PathElem{Left: false, Hash: naiveRoot(leaves[k:])})
	}
	return append(naivePath(leaves[k:], i-k), PathElem{Left: true, Hash: naiveRoot(leaves[:k])})
}

func digestOf(s string) engine.Digest { return sha256.Sum256([]byte(s)) }

func testLeaf(i int, claims engine.Digest) Leaf {
	var nonce engine.Digest
	nonce[0] = byte(i)
	return Leaf{
		WriteSetDigest: digestOf("write set " + string(rune('a'+i))),
		CommitEvidence: engine.CommitEvidence(engine.TxID{View: 2, Seqno: uint64(10 + i)}, nonce),
		ClaimsDigest:   claims,
	}
}

// tree makes n leaves (claims digest i for leaf i unless given) and their root.
func tree(n int, claims map[int]engine.Digest) ([]Leaf, []engine.Digest, engine.Digest) {
	leaves := make([]Leaf, n)
	hashes := make([]engine.Digest, n)
	for i := range leaves {
		c, ok := claims[i]
		if !ok {
			c = digestOf("claims " + string(rune('a'+i)))
		}
		leaves[i] = testLeaf(i, c)
		hashes[i] = leaves[i].Hash()
	}
	return leaves, hashes, naiveRoot(hashes)
}

func mustCBOR(v any) cbor.RawMessage {
	b, err := engine.CBOR.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func codeOf(err error) string {
	if err == nil {
		return ""
	}
	return engine.AsError(err).Code
}

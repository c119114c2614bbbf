package cose

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// A signature made from a digest of the Sig_structure streamed in pieces
// verifies as any COSE signature does, and a COSE_Sign1 written in pieces
// is the one Encode writes.
func TestSignDigestInPieces(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		key, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		alg, _ := DefaultAlgorithm(key.Public())
		h := Header{}
		h.Set(LabelAlg, mustEncode(t, int64(alg)))
		protected, err := h.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := append(SigStructureHead(protected, len(payload)), payload...), SigStructure(protected, payload); !bytes.Equal(got, want) {
			t.Fatalf("%s: the Sig_structure's head and payload are not the Sig_structure", alg)
		}
		hash, ok := PrehashOf(alg)
		if !ok {
			t.Fatalf("%s has no prehash", alg)
		}
		d := hash.New()
		d.Write(SigStructureHead(protected, len(payload)))
		d.Write(payload[:1000])
		d.Write(payload[1000:])
		sig, err := SignDigest(key, alg, d.Sum(nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifySignature(alg, key.Public(), protected, payload, sig); err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		head, err := Sign1Head(protected, Header{}, len(payload))
		if err != nil {
			t.Fatal(err)
		}
		pieces := AppendSignature(append(head, payload...), sig)
		whole, err := (&Sign1{Protected: protected, Payload: payload, Signature: sig}).Encode()
		if err != nil || !bytes.Equal(pieces, whole) {
			t.Fatalf("%s: the COSE_Sign1 in pieces differs from Encode's (%v)", alg, err)
		}
	}
}

// Algorithms whose signature is not over a digest made here are refused.
func TestSignDigestRefusesEdDSA(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	if _, ok := PrehashOf(EdDSA); ok {
		t.Fatal("EdDSA has a prehash")
	}
	if _, err := SignDigest(key, EdDSA, make([]byte, 32)); err == nil {
		t.Fatal("EdDSA signed a digest")
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := SignDigest(p256, ES256, make([]byte, 20)); err == nil {
		t.Fatal("a digest of the wrong size was signed")
	}
}

func mustEncode(t *testing.T, v any) cbor.RawMessage {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

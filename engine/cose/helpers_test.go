package cose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/didx509/devca"
)

// testNow lies inside every generated chain's validity.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

var (
	chainsMu sync.Mutex
	chains   = map[string]*devca.Chain{}
)

// chainFor returns a cached dev chain whose leaf key suits alg.
func chainFor(t testing.TB, alg Algorithm) *devca.Chain {
	t.Helper()
	kind := alg.String()
	switch alg {
	case PS256, PS384, PS512:
		kind = "RSA"
	}
	chainsMu.Lock()
	defer chainsMu.Unlock()
	if c, ok := chains[kind]; ok {
		return c
	}
	var key crypto.Signer
	var err error
	switch alg {
	case ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ES384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case ES512:
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case PS256, PS384, PS512:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case EdDSA:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := devca.New(devca.Options{Now: testNow.Add(-24 * time.Hour), Validity: 30 * 24 * time.Hour, LeafKey: key, Intermediate: true})
	if err != nil {
		t.Fatal(err)
	}
	chains[kind] = c
	return c
}

// signed makes a valid statement with alg, iat = testNow.
func signed(t testing.TB, alg Algorithm, opts ...SignOption) ([]byte, *devca.Chain) {
	t.Helper()
	c := chainFor(t, alg)
	raw, err := SignStatement(c.LeafKey, c.Certs, c.Issuer(), "gavel/test", "application/json", []byte(`{"x":1}`), testNow, append([]SignOption{WithAlgorithm(alg)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return raw, c
}

// reencode applies edit to the decoded message and encodes it again; the
// signature is left as it was.
func reencode(t testing.TB, raw []byte, edit func(m *Sign1, phdr Header)) []byte {
	t.Helper()
	m, err := DecodeSign1(raw)
	if err != nil {
		t.Fatal(err)
	}
	phdr, err := m.ProtectedHeader()
	if err != nil {
		t.Fatal(err)
	}
	edit(m, phdr)
	if m.Protected, err = phdr.Encode(); err != nil {
		t.Fatal(err)
	}
	out, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return out
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

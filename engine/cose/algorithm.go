package cose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strconv"

	gocose "github.com/veraison/go-cose"

	"github.com/gavelhq/gavel/engine"
)

// Algorithm is a COSE signature algorithm identifier (IANA "COSE Algorithms").
type Algorithm int64

// The algorithms gavel signs and verifies.
const (
	ES256 Algorithm = -7
	ES384 Algorithm = -35
	ES512 Algorithm = -36
	PS256 Algorithm = -37
	PS384 Algorithm = -38
	PS512 Algorithm = -39
	EdDSA Algorithm = -8
)

var algorithmNames = map[Algorithm]string{
	ES256: "ES256", ES384: "ES384", ES512: "ES512",
	PS256: "PS256", PS384: "PS384", PS512: "PS512",
	EdDSA: "EdDSA",
}

func (a Algorithm) String() string {
	if n, ok := algorithmNames[a]; ok {
		return n
	}
	return "alg(" + strconv.FormatInt(int64(a), 10) + ")"
}

// Supported reports whether gavel signs and verifies with a.
func (a Algorithm) Supported() bool { _, ok := algorithmNames[a]; return ok }

// DefaultAlgorithm picks the algorithm for a public key: ECDSA P-256/384/521
// → ES256/384/512, RSA → PS256, Ed25519 → EdDSA.
func DefaultAlgorithm(pub crypto.PublicKey) (Algorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ES256, nil
		case elliptic.P384():
			return ES384, nil
		case elliptic.P521():
			return ES512, nil
		}
		return 0, engine.Errorf(engine.KindInvalid, CodeUnsupportedAlgorithm, "ECDSA curve %s is not supported", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return PS256, nil
	case ed25519.PublicKey:
		return EdDSA, nil
	}
	return 0, engine.Errorf(engine.KindInvalid, CodeUnsupportedAlgorithm, "key type %T is not supported", pub)
}

// CheckKey reports whether pub is a key for a: the ECDSA curve must be the
// algorithm's own, RSA keys must have at least 2048 bits (RFC 8230).
func (a Algorithm) CheckKey(pub crypto.PublicKey) error {
	mismatch := func() error {
		return engine.Errorf(engine.KindInvalid, CodeInvalidSignature, "a %s key cannot verify %s", keyDescription(pub), a)
	}
	switch a {
	case ES256, ES384, ES512:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return mismatch()
		}
		want := map[Algorithm]elliptic.Curve{ES256: elliptic.P256(), ES384: elliptic.P384(), ES512: elliptic.P521()}[a]
		if k.Curve != want {
			return mismatch()
		}
	case PS256, PS384, PS512:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return mismatch()
		}
		if k.N.BitLen() < 2048 {
			return engine.Errorf(engine.KindInvalid, CodeInvalidSignature, "RSA key has %d bits, %s needs at least 2048", k.N.BitLen(), a)
		}
	case EdDSA:
		if _, ok := pub.(ed25519.PublicKey); !ok {
			return mismatch()
		}
	default:
		return engine.Errorf(engine.KindInvalid, CodeUnsupportedAlgorithm, "algorithm %s is not supported", a)
	}
	return nil
}

func keyDescription(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return "RSA-" + strconv.Itoa(k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return "non-signing"
}

// VerifySignature checks a COSE_Sign1 signature: alg must fit key, and
// signature must verify over the Signature1 Sig_structure of protected (the
// serialized protected header) and payload, with no external AAD.
func VerifySignature(alg Algorithm, key crypto.PublicKey, protected, payload, signature []byte) error {
	if err := alg.CheckKey(key); err != nil {
		return err
	}
	v, err := gocose.NewVerifier(gocose.Algorithm(alg), key)
	if err != nil {
		return engine.Wrap(engine.KindInvalid, CodeInvalidSignature, err, "cannot verify %s with a %s key", alg, keyDescription(key))
	}
	if err := v.Verify(SigStructure(protected, payload), signature); err != nil {
		return engine.Errorf(engine.KindInvalid, CodeInvalidSignature, "%s signature does not verify", alg)
	}
	return nil
}

// Sign makes the COSE_Sign1 signature of protected and payload with alg.
func Sign(signer crypto.Signer, alg Algorithm, protected, payload []byte) ([]byte, error) {
	if err := alg.CheckKey(signer.Public()); err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeUnsupportedAlgorithm, err, "cannot sign %s with this key", alg)
	}
	s, err := gocose.NewSigner(gocose.Algorithm(alg), signer)
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeUnsupportedAlgorithm, err, "cannot sign %s with this key", alg)
	}
	sig, err := s.Sign(rand.Reader, SigStructure(protected, payload))
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "SigningFailed", err, "signing failed")
	}
	return sig, nil
}

package govreq

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"strconv"
	"strings"

	"github.com/gavelhq/gavel/engine"
)

// Algorithm is a COSE signature algorithm identifier (RFC 9053).
type Algorithm int64

// The algorithms gavel accepts. CCF's members use ECDSA; gavel adds EdDSA
// (always Ed25519: Ed448 keys are refused).
const (
	ES256 Algorithm = -7
	ES384 Algorithm = -35
	EdDSA Algorithm = -8
)

func (a Algorithm) String() string {
	switch a {
	case ES256:
		return "ES256"
	case ES384:
		return "ES384"
	case EdDSA:
		return "EdDSA"
	}
	return "alg(" + strconv.FormatInt(int64(a), 10) + ")"
}

// Supported reports whether gavel verifies signatures made with a.
func (a Algorithm) Supported() bool { return a == ES256 || a == ES384 || a == EdDSA }

// ParseAlgorithm maps a name ("ES256", "ES384", "EdDSA", any case) to its
// algorithm.
func ParseAlgorithm(name string) (Algorithm, error) {
	switch strings.ToUpper(name) {
	case "ES256":
		return ES256, nil
	case "ES384":
		return ES384, nil
	case "EDDSA":
		return EdDSA, nil
	}
	return 0, engine.Errorf(engine.KindInvalid, "UnsupportedAlgorithm",
		"algorithm %q is not one of ES256, ES384, EdDSA", name)
}

// AlgorithmForKey is the one algorithm a public key signs with: P-256 →
// ES256, P-384 → ES384, Ed25519 → EdDSA. Any other key is refused.
func AlgorithmForKey(pub crypto.PublicKey) (Algorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ES256, nil
		case elliptic.P384():
			return ES384, nil
		}
		return 0, engine.Errorf(engine.KindInvalid, "UnsupportedAlgorithm",
			"ECDSA curve %s is not P-256 or P-384", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return EdDSA, nil
	}
	return 0, engine.Errorf(engine.KindInvalid, "UnsupportedAlgorithm",
		"key type %T is not ECDSA P-256, P-384 or Ed25519", pub)
}

// signatureSize is the length of a COSE signature for a: ECDSA as r‖s with
// each half the size of the curve order (RFC 9053 §2.1).
func signatureSize(a Algorithm) int {
	switch a {
	case ES256, EdDSA:
		return 64
	case ES384:
		return 96
	}
	return 0
}

package govreq

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gavelhq/gavel/engine"
)

// coseWGExpected is gavel's answer to every COSE WG vector in
// testdata/cose-wg: "" means it verifies, otherwise the error code.
var coseWGExpected = map[string]string{
	"sign1-tests/sign-pass-01.json": "",                     // alg in the unprotected header, protected = h'A0'
	"sign1-tests/sign-pass-02.json": "",                     // external AAD
	"sign1-tests/sign-pass-03.json": "",                     // untagged
	"sign1-tests/sign-fail-01.json": "InvalidCOSE",          // tag 998
	"sign1-tests/sign-fail-02.json": "InvalidSignature",     // payload changed
	"sign1-tests/sign-fail-03.json": "UnsupportedAlgorithm", // alg -999
	"sign1-tests/sign-fail-04.json": "UnsupportedAlgorithm", // alg "unknown"
	"sign1-tests/sign-fail-06.json": "InvalidSignature",     // protected attribute added
	"sign1-tests/sign-fail-07.json": "InvalidSignature",     // protected attribute removed

	"ecdsa-examples/ecdsa-sig-01.json": "",                     // ES256
	"ecdsa-examples/ecdsa-sig-02.json": "",                     // ES384
	"ecdsa-examples/ecdsa-sig-03.json": "UnsupportedAlgorithm", // ES512 on P-521: not accepted by gavel
	"ecdsa-examples/ecdsa-sig-04.json": "UnsupportedAlgorithm", // ES512 on P-256: not accepted by gavel
	"eddsa-examples/eddsa-sig-01.json": "",                     // EdDSA, Ed25519
	"eddsa-examples/eddsa-sig-02.json": "InvalidSignature",     // EdDSA, Ed448: gavel's EdDSA is Ed25519 only

	// COSE_Sign (tag 98, several signers) is not COSE_Sign1.
	"ecdsa-examples/ecdsa-01.json": "InvalidCOSE",
	"ecdsa-examples/ecdsa-02.json": "InvalidCOSE",
	"ecdsa-examples/ecdsa-03.json": "InvalidCOSE",
	"ecdsa-examples/ecdsa-04.json": "InvalidCOSE",
	"eddsa-examples/eddsa-01.json": "InvalidCOSE",
	"eddsa-examples/eddsa-02.json": "InvalidCOSE",
}

type coseWGJWK struct {
	Kty  string `json:"kty"`
	Crv  string `json:"crv"`
	X    string `json:"x"`
	Y    string `json:"y"`
	XHex string `json:"x_hex"`
}

type coseWGVector struct {
	Title string `json:"title"`
	Fail  bool   `json:"fail"`
	Input struct {
		Sign0 *struct {
			Key      coseWGJWK `json:"key"`
			External string    `json:"external"`
		} `json:"sign0"`
		Sign *struct {
			Signers []struct {
				Key coseWGJWK `json:"key"`
			} `json:"signers"`
		} `json:"sign"`
	} `json:"input"`
	Intermediates struct {
		ToBeSignHex string `json:"ToBeSign_hex"`
	} `json:"intermediates"`
	Output struct {
		CBOR string `json:"cbor"`
	} `json:"output"`
}

// ed448Key stands for an Ed448 public key, which Go's crypto cannot use.
type ed448Key []byte

func (k coseWGJWK) publicKey(t *testing.T) crypto.PublicKey {
	t.Helper()
	b64 := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) == 0 {
			t.Fatalf("JWK coordinate %q: %v", s, err)
		}
		return b
	}
	switch k.Kty + "/" + k.Crv {
	case "EC/P-256", "EC/P-384", "EC/P-521":
		curve := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}[k.Crv]
		point := append(append([]byte{4}, b64(k.X)...), b64(k.Y)...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			t.Fatalf("JWK %s point: %v", k.Crv, err)
		}
		return pub
	case "OKP/Ed25519", "OKP/Ed448":
		x, err := hex.DecodeString(k.XHex)
		if err != nil {
			t.Fatalf("JWK x_hex: %v", err)
		}
		if k.Crv == "Ed448" {
			return ed448Key(x)
		}
		return ed25519.PublicKey(x)
	}
	t.Fatalf("JWK kty %q crv %q not handled", k.Kty, k.Crv)
	return nil
}

func TestCOSEWGVectors(t *testing.T) {
	files, err := filepath.Glob("testdata/cose-wg/*/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.ToSlash(f[len("testdata/cose-wg/"):]))
	}
	var listed []string
	for name := range coseWGExpected {
		listed = append(listed, name)
	}
	slices.Sort(names)
	slices.Sort(listed)
	if !slices.Equal(names, listed) {
		t.Fatalf("vector files %v\ndo not match the expectations listed %v", names, listed)
	}

	ran, verified := 0, 0
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/cose-wg", name))
			if err != nil {
				t.Fatal(err)
			}
			var v coseWGVector
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatal(err)
			}
			want := coseWGExpected[name]
			if v.Fail && want == "" {
				t.Fatalf("%s is marked fail but expected to verify", v.Title)
			}
			var key coseWGJWK
			var aad []byte
			switch {
			case v.Input.Sign0 != nil:
				key = v.Input.Sign0.Key
				if aad, err = hex.DecodeString(v.Input.Sign0.External); err != nil {
					t.Fatal(err)
				}
			case v.Input.Sign != nil && len(v.Input.Sign.Signers) > 0:
				key = v.Input.Sign.Signers[0].Key
			default:
				t.Fatal("vector has no signing key")
			}
			msg, err := hex.DecodeString(v.Output.CBOR)
			if err != nil {
				t.Fatal(err)
			}
			pub := key.publicKey(t)

			err = VerifySign1(msg, pub, aad)
			ran++
			if want == "" {
				if err != nil {
					t.Fatalf("%s: want success, got %v", v.Title, err)
				}
				verified++
				// gavel's Sig_structure encoding matches the vector's ToBeSign.
				s, err := decodeSign1(msg)
				if err != nil {
					t.Fatal(err)
				}
				protected := s.protected
				if len(s.protectedH) == 0 {
					protected = nil
				}
				if got := hex.EncodeToString(appendSigStructure(nil, protected, aad, s.payload)); !strings.EqualFold(got, v.Intermediates.ToBeSignHex) {
					t.Errorf("%s: Sig_structure %s, vector says %s", v.Title, got, v.Intermediates.ToBeSignHex)
				}
				// The same message with one signature bit flipped must fail.
				bad := slices.Clone(msg)
				bad[len(bad)-1] ^= 1
				if code := codeOf(VerifySign1(bad, pub, aad)); code != "InvalidSignature" {
					t.Errorf("%s with a flipped signature bit: got %q, want InvalidSignature", v.Title, code)
				}
				if len(aad) > 0 {
					if code := codeOf(VerifySign1(msg, pub, nil)); code != "InvalidSignature" {
						t.Errorf("%s without its external AAD: got %q, want InvalidSignature", v.Title, code)
					}
				}
				return
			}
			if code := codeOf(err); code != want {
				t.Fatalf("%s: got %v, want code %s", v.Title, err, want)
			}
		})
	}
	if ran != 21 || verified != 6 {
		t.Fatalf("ran %d vectors with %d verifying; want 21 and 6", ran, verified)
	}
}

// codeOf is the typed error's code, "" for nil.
func codeOf(err error) string {
	if err == nil {
		return ""
	}
	return engine.AsError(err).Code
}

package govreq

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"math/big"

	"github.com/fxamacker/cbor/v2"
	"github.com/gavelhq/gavel/engine"
)

// CBOR major types, read from the first byte of an encoded item.
const (
	majorUint  = 0
	majorNeg   = 1
	majorBytes = 2
	majorText  = 3
	majorArray = 4
	majorMap   = 5
	majorTag   = 6
)

// tagSign1 is the CBOR tag of a COSE_Sign1 message (RFC 9052 §4.2).
const tagSign1 = 18

// Header labels (RFC 9052 §3.1). Positive integer labels decode as uint64.
var (
	labelAlg  any = uint64(1)
	labelCrit any = uint64(2)
	labelKID  any = uint64(4)
)

// header is a decoded header bucket: label → the label's value, still encoded,
// so each value's CBOR type can be checked exactly.
type header map[any]cbor.RawMessage

// sign1 is a decoded COSE_Sign1: [protected: bstr, unprotected: map,
// payload: bstr / nil, signature: bstr], tagged 18 or not.
type sign1 struct {
	tagged      bool
	protected   []byte // the protected bucket's bytes, exactly as signed
	protectedH  header
	unprotected header
	payload     []byte // nil when detached
	signature   []byte
}

func invalidCOSE(format string, args ...any) *engine.Error {
	return engine.Errorf(engine.KindInvalid, "InvalidCOSE", format, args...)
}

func majorOf(raw []byte) byte {
	if len(raw) == 0 {
		return 0xff
	}
	return raw[0] >> 5
}

// decodeSign1 decodes the COSE_Sign1 structure with engine.CBORDecode. It
// checks CBOR types, not the meaning of any header.
func decodeSign1(raw []byte) (*sign1, error) {
	if len(raw) == 0 {
		return nil, invalidCOSE("empty body is not a COSE_Sign1")
	}
	s := &sign1{}
	body := raw
	if majorOf(raw) == majorTag {
		var rt cbor.RawTag
		if err := engine.CBORDecode.Unmarshal(raw, &rt); err != nil {
			return nil, engine.Wrap(engine.KindInvalid, "InvalidCOSE", err, "COSE_Sign1 does not decode")
		}
		if rt.Number != tagSign1 {
			return nil, invalidCOSE("CBOR tag %d is not COSE_Sign1 (18)", rt.Number)
		}
		s.tagged = true
		body = rt.Content
	}
	if majorOf(body) != majorArray {
		return nil, invalidCOSE("COSE_Sign1 is not a CBOR array")
	}
	var parts []cbor.RawMessage
	if err := engine.CBORDecode.Unmarshal(body, &parts); err != nil {
		return nil, engine.Wrap(engine.KindInvalid, "InvalidCOSE", err, "COSE_Sign1 does not decode")
	}
	if len(parts) != 4 {
		return nil, invalidCOSE("COSE_Sign1 has %d elements, not 4", len(parts))
	}
	var err error
	if s.protected, err = bytesOf(parts[0]); err != nil {
		return nil, invalidCOSE("protected header is not a byte string")
	}
	if majorOf(parts[1]) != majorMap {
		return nil, invalidCOSE("unprotected header is not a map")
	}
	if err := engine.CBORDecode.Unmarshal(parts[1], &s.unprotected); err != nil {
		return nil, engine.Wrap(engine.KindInvalid, "InvalidCOSE", err, "unprotected header does not decode")
	}
	switch {
	case len(parts[2]) == 1 && parts[2][0] == 0xf6: // null: detached payload
	case majorOf(parts[2]) == majorBytes:
		if s.payload, err = bytesOf(parts[2]); err != nil {
			return nil, invalidCOSE("payload does not decode")
		}
	default:
		return nil, invalidCOSE("payload is neither a byte string nor null")
	}
	if s.signature, err = bytesOf(parts[3]); err != nil {
		return nil, invalidCOSE("signature is not a byte string")
	}
	s.protectedH = header{}
	if len(s.protected) > 0 { // a zero-length bstr stands for the empty map
		if majorOf(s.protected) != majorMap {
			return nil, invalidCOSE("protected header is not an encoded map")
		}
		if err := engine.CBORDecode.Unmarshal(s.protected, &s.protectedH); err != nil {
			return nil, engine.Wrap(engine.KindInvalid, "InvalidCOSE", err, "protected header does not decode")
		}
	}
	for label := range s.protectedH {
		if _, dup := s.unprotected[label]; dup {
			return nil, engine.Errorf(engine.KindInvalid, "InvalidHeader",
				"header %v is in both the protected and the unprotected header", label)
		}
	}
	return s, nil
}

// bytesOf decodes an encoded byte string; it refuses any other type
// (including a tagged byte string). The result is never nil.
func bytesOf(raw cbor.RawMessage) ([]byte, error) {
	if majorOf(raw) != majorBytes {
		return nil, invalidCOSE("not a byte string")
	}
	var b []byte
	if err := engine.CBORDecode.Unmarshal(raw, &b); err != nil {
		return nil, err
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// algorithmOf reads an encoded alg value: an integer naming a supported
// algorithm. Text algorithm names are valid COSE but none is supported.
func algorithmOf(raw cbor.RawMessage) (Algorithm, error) {
	switch majorOf(raw) {
	case majorUint, majorNeg:
		var n int64
		if err := engine.CBORDecode.Unmarshal(raw, &n); err == nil && Algorithm(n).Supported() {
			return Algorithm(n), nil
		}
	case majorText:
		var name string
		if err := engine.CBORDecode.Unmarshal(raw, &name); err == nil {
			return 0, engine.Errorf(engine.KindInvalid, "UnsupportedAlgorithm",
				"algorithm %q is not one of ES256 (-7), ES384 (-35), EdDSA (-8)", name)
		}
	}
	return 0, engine.Errorf(engine.KindInvalid, "UnsupportedAlgorithm",
		"algorithm %s is not one of ES256 (-7), ES384 (-35), EdDSA (-8)", diag(raw))
}

// diag shows a short encoded value in an error message.
func diag(raw cbor.RawMessage) string {
	d, err := cbor.Diagnose(raw)
	if err != nil {
		return "(undecodable)"
	}
	if len(d) > 64 {
		d = d[:64] + "…"
	}
	return d
}

// VerifySign1 verifies a COSE_Sign1 message (tagged 18 or untagged, payload
// attached) with pub and the given external AAD (nil for none). The
// algorithm is taken from the protected header, or from the unprotected one
// when the protected header has none (RFC 9052 allows both); it must be
// ES256, ES384 or EdDSA and must match pub: ES256 ↔ P-256, ES384 ↔ P-384,
// EdDSA ↔ Ed25519. It checks the signature only; governance requests add
// their own header rules in Parse.
//
// Errors: InvalidCOSE, InvalidHeader, MissingHeader, UnsupportedAlgorithm
// (KindInvalid); InvalidSignature (KindUnauthorized).
func VerifySign1(raw []byte, pub crypto.PublicKey, externalAAD []byte) error {
	s, err := decodeSign1(raw)
	if err != nil {
		return err
	}
	if s.payload == nil {
		return invalidCOSE("detached payloads are not supported")
	}
	algRaw, ok := s.protectedH[labelAlg]
	if !ok {
		if algRaw, ok = s.unprotected[labelAlg]; !ok {
			return engine.Errorf(engine.KindInvalid, "MissingHeader", "no alg header")
		}
	}
	alg, err := algorithmOf(algRaw)
	if err != nil {
		return err
	}
	protected := s.protected
	if len(s.protectedH) == 0 {
		// No protected attributes are signed as a zero-length bstr, even
		// when sent as an encoded empty map (RFC 9052 §4.4; COSE WG
		// sign-pass-01).
		protected = nil
	}
	return verifySignature(alg, protected, externalAAD, s.payload, s.signature, pub)
}

func invalidSignature(format string, args ...any) *engine.Error {
	return engine.Errorf(engine.KindUnauthorized, "InvalidSignature", format, args...)
}

// verifySignature checks sig over the COSE Sig_structure of (protected,
// externalAAD, payload) with pub, which must be the key type alg names.
func verifySignature(alg Algorithm, protected, externalAAD, payload, sig []byte, pub crypto.PublicKey) error {
	switch alg {
	case ES256, ES384:
		k, ok := pub.(*ecdsa.PublicKey)
		want, h := elliptic.P256(), hash.Hash(sha256.New())
		if alg == ES384 {
			want, h = elliptic.P384(), sha512.New384()
		}
		if !ok || k.Curve != want {
			return invalidSignature("%s needs an ECDSA %s key, not %s", alg, want.Params().Name, keyName(pub))
		}
		if len(sig) != signatureSize(alg) {
			return invalidSignature("%s signature has %d bytes, not %d", alg, len(sig), signatureSize(alg))
		}
		writeSigStructure(h, protected, externalAAD, payload)
		n := len(sig) / 2
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		if !ecdsa.Verify(k, h.Sum(nil), r, s) {
			return invalidSignature("%s signature does not verify", alg)
		}
		return nil
	case EdDSA:
		k, ok := pub.(ed25519.PublicKey)
		if !ok || len(k) != ed25519.PublicKeySize {
			return invalidSignature("EdDSA needs an Ed25519 key, not %s", keyName(pub))
		}
		if len(sig) != ed25519.SignatureSize {
			return invalidSignature("EdDSA signature has %d bytes, not %d", len(sig), ed25519.SignatureSize)
		}
		if !ed25519.Verify(k, appendSigStructure(nil, protected, externalAAD, payload), sig) {
			return invalidSignature("EdDSA signature does not verify")
		}
		return nil
	}
	return engine.Errorf(engine.KindInvalid, "UnsupportedAlgorithm", "algorithm %s is not supported", alg)
}

func keyName(pub crypto.PublicKey) string {
	if k, ok := pub.(*ecdsa.PublicKey); ok && k.Curve != nil {
		return "ECDSA " + k.Curve.Params().Name
	}
	if _, ok := pub.(ed25519.PublicKey); ok {
		return "Ed25519"
	}
	if pub == nil {
		return "no key"
	}
	return fmt.Sprintf("a key of type %T", pub)
}

// sigStructurePrefix is the start of every COSE Sig_structure for
// COSE_Sign1: a 4-element array and the text "Signature1" (RFC 9052 §4.4).
var sigStructurePrefix = []byte{0x84, 0x6a, 'S', 'i', 'g', 'n', 'a', 't', 'u', 'r', 'e', '1'}

// appendSigStructure appends the encoded Sig_structure
// ["Signature1", protected, external_aad, payload] to b.
func appendSigStructure(b, protected, externalAAD, payload []byte) []byte {
	b = append(b, sigStructurePrefix...)
	b = appendBytes(b, protected)
	b = appendBytes(b, externalAAD)
	return appendBytes(b, payload)
}

// writeSigStructure hashes the Sig_structure without building it, so a
// large payload is not copied.
func writeSigStructure(h hash.Hash, protected, externalAAD, payload []byte) {
	var head [9]byte
	h.Write(sigStructurePrefix)
	for _, part := range [][]byte{protected, externalAAD, payload} {
		h.Write(appendHead(head[:0], majorBytes, uint64(len(part))))
		h.Write(part)
	}
}

// appendBytes appends a CBOR byte string.
func appendBytes(b, data []byte) []byte {
	return append(appendHead(b, majorBytes, uint64(len(data))), data...)
}

// appendHead appends a CBOR item head in its shortest form (RFC 8949 §4.2.1).
func appendHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return append(b, m|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(b, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
		byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

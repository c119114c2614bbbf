package cose

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/didx509"
)

var allAlgorithms = []Algorithm{ES256, ES384, ES512, PS256, PS384, PS512, EdDSA}

func TestSignVerifyEveryAlgorithm(t *testing.T) {
	for _, alg := range allAlgorithms {
		t.Run(alg.String(), func(t *testing.T) {
			raw, c := signed(t, alg, WithClaim("svn", 7))
			st, err := ParseStatement(raw)
			if err != nil {
				t.Fatalf("ParseStatement: %v", err)
			}
			if st.Alg != alg || st.Issuer != c.Issuer() || st.Subject != "gavel/test" ||
				st.ContentType != "application/json" || string(st.Payload) != `{"x":1}` ||
				!st.IssuedAt.Equal(testNow) || len(st.Chain) != 3 || !st.Chain[0].Equal(c.Leaf()) {
				t.Fatalf("parsed statement differs: %+v", st)
			}
			if svn, ok, err := st.Claims.Int("svn"); !ok || err != nil || svn != 7 {
				t.Fatalf("svn = %d %v %v", svn, ok, err)
			}
			if err := VerifyStatement(st, testNow.Add(1000*24*time.Hour)); err != nil {
				t.Fatalf("VerifyStatement: %v", err)
			}
			// Every signature byte matters.
			for i := range st.Signature {
				bad := *st
				bad.Signature = bytes.Clone(st.Signature)
				bad.Signature[i] ^= 0x80
				if err := VerifyStatement(&bad, testNow); codeOf(err) != CodeInvalidSignature {
					t.Fatalf("signature byte %d flipped: %v", i, err)
				}
			}
			bad := *st
			bad.Payload = []byte(`{"x":2}`)
			if err := VerifyStatement(&bad, testNow); codeOf(err) != CodeInvalidSignature {
				t.Fatalf("changed payload: %v", err)
			}
		})
	}
}

func TestSignStatementRefuses(t *testing.T) {
	c := chainFor(t, ES256)
	rsaChain := chainFor(t, PS256)
	cases := []struct {
		name string
		sign func() error
		code string
	}{
		{"alg does not fit the key", func() error {
			_, err := SignStatement(c.LeafKey, c.Certs, c.Issuer(), "s", "", nil, testNow, WithAlgorithm(ES384))
			return err
		}, CodeUnsupportedAlgorithm},
		{"RS256 is not offered", func() error {
			_, err := SignStatement(rsaChain.LeafKey, rsaChain.Certs, rsaChain.Issuer(), "s", "", nil, testNow, WithAlgorithm(-257))
			return err
		}, CodeUnsupportedAlgorithm},
		{"leaf does not hold the key", func() error {
			_, err := SignStatement(c.LeafKey, rsaChain.Certs, c.Issuer(), "s", "", nil, testNow)
			return err
		}, CodeInvalidStatement},
		{"no chain", func() error {
			_, err := SignStatement(c.LeafKey, nil, c.Issuer(), "s", "", nil, testNow)
			return err
		}, CodeInvalidStatement},
		{"empty subject", func() error {
			_, err := SignStatement(c.LeafKey, c.Certs, c.Issuer(), "", "", nil, testNow)
			return err
		}, CodeInvalidStatement},
		{"bad claim label", func() error {
			_, err := SignStatement(c.LeafKey, c.Certs, c.Issuer(), "s", "", nil, testNow, WithClaim(1.5, 1))
			return err
		}, CodeInvalidStatement},
		{"bad header value", func() error {
			_, err := SignStatement(c.LeafKey, c.Certs, c.Issuer(), "s", "", nil, testNow, WithHeader("x", make(chan int)))
			return err
		}, CodeInvalidStatement},
	}
	for _, tc := range cases {
		if err := tc.sign(); codeOf(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
}

func TestVerifyStatementIssuer(t *testing.T) {
	raw, c := signed(t, ES256)
	other := chainFor(t, ES384)
	resign := func(t *testing.T, issuer string, iat time.Time, chain []*x509.Certificate) *Statement {
		b, err := SignStatement(c.LeafKey, chain, issuer, "s", "", []byte("p"), iat)
		if err != nil {
			t.Fatal(err)
		}
		st, err := ParseStatement(b)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	validFrom, validTo := c.Leaf().NotBefore, c.Leaf().NotAfter
	otherRoot, _ := didx509.ForChain(other.Certs, didx509.EKU(devcaEKU))
	cases := []struct {
		name  string
		st    func(t *testing.T) *Statement
		now   time.Time
		code  string
		cause error
	}{
		{"valid", func(t *testing.T) *Statement { st, _ := ParseStatement(raw); return st }, testNow, "", nil},
		{"not a did:x509", func(t *testing.T) *Statement { return resign(t, "https://issuer.example", testNow, c.Certs) }, testNow, CodeInvalidIssuer, nil},
		{"pins another root", func(t *testing.T) *Statement { return resign(t, otherRoot, testNow, c.Certs) }, testNow, CodeInvalidIssuer, didx509.ErrFingerprint},
		{"eku not in leaf", func(t *testing.T) *Statement {
			did, _ := didx509.ForChain(c.Certs, didx509.EKU("1.2.3"))
			return resign(t, did, testNow, c.Certs)
		}, testNow, CodeInvalidIssuer, didx509.ErrPredicate},
		{"iat after the chain expired, now valid", func(t *testing.T) *Statement { return resign(t, c.Issuer(), validTo.Add(time.Hour), c.Certs) }, testNow, CodeInvalidIssuer, didx509.ErrChain},
		{"iat valid, now after expiry", func(t *testing.T) *Statement { return resign(t, c.Issuer(), testNow, c.Certs) }, validTo.Add(time.Hour), "", nil},
		{"no iat, now valid", func(t *testing.T) *Statement { return resign(t, c.Issuer(), time.Time{}, c.Certs) }, testNow, "", nil},
		{"no iat, now before validity", func(t *testing.T) *Statement { return resign(t, c.Issuer(), time.Time{}, c.Certs) }, validFrom.Add(-time.Hour), CodeInvalidIssuer, didx509.ErrChain},
		{"leaf only", func(t *testing.T) *Statement { return resign(t, c.Issuer(), testNow, c.Certs[:1]) }, testNow, CodeInvalidIssuer, didx509.ErrChain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyStatement(tc.st(t), tc.now)
			if codeOf(err) != tc.code {
				t.Fatalf("VerifyStatement = %v, want code %q", err, tc.code)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Fatalf("VerifyStatement = %v, want cause %v", err, tc.cause)
			}
		})
	}
}

const devcaEKU = "1.3.6.1.5.5.7.3.3"

// A header alg that does not fit the leaf key fails even if the signature
// itself is good for the key's own algorithm.
func TestVerifyAlgorithmMustFitKey(t *testing.T) {
	raw, c := signed(t, ES384)
	raw = reencode(t, raw, func(m *Sign1, phdr Header) {
		phdr.Set(LabelAlg, mustCBOR(int64(ES256)))
	})
	m, _ := DecodeSign1(raw)
	var err error
	if m.Signature, err = Sign(c.LeafKey, ES384, m.Protected, m.Payload); err != nil {
		t.Fatal(err)
	}
	raw, _ = m.Encode()
	st, err := ParseStatement(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyStatement(st, testNow); codeOf(err) != CodeInvalidSignature {
		t.Fatalf("ES256 header over a P-384 key: %v", err)
	}
}

func TestParseStatementHeaders(t *testing.T) {
	base, c := signed(t, ES256)
	leafOnly := mustCBOR(c.Leaf().Raw)
	tag1 := mustCBOR(cbor.Tag{Number: 1, Content: int64(1700000000)})
	cases := []struct {
		name  string
		edit  func(m *Sign1, phdr Header)
		code  string
		check func(t *testing.T, st *Statement)
	}{
		{"unchanged", func(*Sign1, Header) {}, "", nil},
		{"no alg", func(_ *Sign1, h Header) { delete(h, LabelAlg) }, CodeInvalidStatement, nil},
		{"text alg", func(_ *Sign1, h Header) { h.Set(LabelAlg, mustCBOR("ES256")) }, CodeUnsupportedAlgorithm, nil},
		{"RS256", func(_ *Sign1, h Header) { h.Set(LabelAlg, mustCBOR(-257)) }, CodeUnsupportedAlgorithm, nil},
		{"ES256K", func(_ *Sign1, h Header) { h.Set(LabelAlg, mustCBOR(-47)) }, CodeUnsupportedAlgorithm, nil},
		{"alg out of range", func(_ *Sign1, h Header) { h.Set(LabelAlg, mustCBOR(uint64(1<<63))) }, CodeInvalidStatement, nil},
		{"alg as bytes", func(_ *Sign1, h Header) { h.Set(LabelAlg, mustCBOR([]byte{1})) }, CodeInvalidStatement, nil},
		{"no x5chain", func(_ *Sign1, h Header) { delete(h, LabelX5Chain) }, CodeInvalidStatement, nil},
		{"x5chain integer", func(_ *Sign1, h Header) { h.Set(LabelX5Chain, mustCBOR(1)) }, CodeInvalidStatement, nil},
		{"x5chain empty array", func(_ *Sign1, h Header) { h.Set(LabelX5Chain, mustCBOR([][]byte{})) }, CodeInvalidStatement, nil},
		{"x5chain not DER", func(_ *Sign1, h Header) { h.Set(LabelX5Chain, mustCBOR([]byte("cert"))) }, CodeInvalidStatement, nil},
		{"x5chain array with text", func(_ *Sign1, h Header) { h.Set(LabelX5Chain, mustCBOR([]any{c.Leaf().Raw, "x"})) }, CodeInvalidStatement, nil},
		{"x5chain single byte string", func(_ *Sign1, h Header) { h.Set(LabelX5Chain, leafOnly) }, "", func(t *testing.T, st *Statement) {
			if len(st.Chain) != 1 || !st.Chain[0].Equal(c.Leaf()) {
				t.Fatal("single-certificate x5chain not read")
			}
		}},
		{"no CWT claims", func(_ *Sign1, h Header) { delete(h, LabelCWTClaims) }, CodeInvalidStatement, nil},
		{"CWT claims not a map", func(_ *Sign1, h Header) { h.Set(LabelCWTClaims, mustCBOR("iss")) }, CodeInvalidStatement, nil},
		{"no iss", func(_ *Sign1, h Header) { h.Set(LabelCWTClaims, mustCBOR(map[int]any{2: "s"})) }, CodeInvalidStatement, nil},
		{"iss not text", func(_ *Sign1, h Header) { h.Set(LabelCWTClaims, mustCBOR(map[int]any{1: 5, 2: "s"})) }, CodeInvalidStatement, nil},
		{"empty iss", func(_ *Sign1, h Header) { h.Set(LabelCWTClaims, mustCBOR(map[int]any{1: "", 2: "s"})) }, CodeInvalidStatement, nil},
		{"no sub", func(_ *Sign1, h Header) { h.Set(LabelCWTClaims, mustCBOR(map[int]any{1: "i"})) }, CodeInvalidStatement, nil},
		{"iat text", func(_ *Sign1, h Header) { h.Set(LabelCWTClaims, mustCBOR(map[int]any{1: "i", 2: "s", 6: "now"})) }, CodeInvalidStatement, nil},
		{"iat float", func(_ *Sign1, h Header) { h.Set(LabelCWTClaims, mustCBOR(map[int]any{1: "i", 2: "s", 6: 1.5})) }, CodeInvalidStatement, nil},
		{"iat tagged epoch", func(_ *Sign1, h Header) {
			h.Set(LabelCWTClaims, mustCBOR(map[int]cbor.RawMessage{1: mustCBOR("i"), 2: mustCBOR("s"), 6: tag1}))
		}, "", func(t *testing.T, st *Statement) {
			if !st.IssuedAt.Equal(time.Unix(1700000000, 0)) {
				t.Fatalf("iat = %v", st.IssuedAt)
			}
		}},
		{"no iat, text-keyed claims", func(_ *Sign1, h Header) {
			h.Set(LabelCWTClaims, mustCBOR(map[any]any{int64(1): "i", int64(2): "s", "svn": 3, "feed": "x"}))
		}, "", func(t *testing.T, st *Statement) {
			if !st.IssuedAt.IsZero() || len(st.Claims) != 4 {
				t.Fatalf("iat %v, claims %v", st.IssuedAt, st.Claims)
			}
		}},
		{"content type number", func(_ *Sign1, h Header) { h.Set(LabelContentType, mustCBOR(50)) }, "", func(t *testing.T, st *Statement) {
			if st.ContentType != "50" {
				t.Fatalf("content type %q", st.ContentType)
			}
		}},
		{"no content type", func(_ *Sign1, h Header) { delete(h, LabelContentType) }, "", func(t *testing.T, st *Statement) {
			if st.ContentType != "" {
				t.Fatalf("content type %q", st.ContentType)
			}
		}},
		{"empty content type", func(_ *Sign1, h Header) { h.Set(LabelContentType, mustCBOR("")) }, CodeInvalidStatement, nil},
		{"content type bytes", func(_ *Sign1, h Header) { h.Set(LabelContentType, mustCBOR([]byte("a"))) }, CodeInvalidStatement, nil},
		{"hash envelope", func(m *Sign1, h Header) {
			sum := sha256.Sum256([]byte("preimage"))
			m.Payload = sum[:]
			h.Set(LabelPayloadHashAlg, mustCBOR(-16))
			h.Set(LabelPreimageContentType, mustCBOR("text/plain"))
			h.Set(LabelPayloadLocation, mustCBOR("https://example.com/p"))
		}, "", func(t *testing.T, st *Statement) {
			if !st.IsHashEnvelope() || st.PayloadHashAlg != -16 || st.PreimageContentType != "text/plain" || st.PayloadLocation != "https://example.com/p" {
				t.Fatalf("hash envelope: %+v", st)
			}
		}},
		{"hash envelope of the wrong size", func(_ *Sign1, h Header) { h.Set(LabelPayloadHashAlg, mustCBOR(-16)) }, CodeInvalidStatement, nil},
		{"hash envelope, unknown hash", func(_ *Sign1, h Header) { h.Set(LabelPayloadHashAlg, mustCBOR(-999)) }, "", nil},
		{"hash envelope alg 0", func(_ *Sign1, h Header) { h.Set(LabelPayloadHashAlg, mustCBOR(0)) }, CodeInvalidStatement, nil},
		{"preimage type without hash alg", func(_ *Sign1, h Header) { h.Set(LabelPreimageContentType, mustCBOR("a/b")) }, CodeInvalidStatement, nil},
		{"location not text", func(m *Sign1, h Header) {
			m.Payload = make([]byte, 32)
			h.Set(LabelPayloadHashAlg, mustCBOR(-16))
			h.Set(LabelPayloadLocation, mustCBOR(1))
		}, CodeInvalidStatement, nil},
		{"crit on an understood header", func(_ *Sign1, h Header) { h.Set(LabelCrit, mustCBOR([]int{3})) }, "", nil},
		{"crit on an unknown header", func(_ *Sign1, h Header) { h.Set(LabelCrit, mustCBOR([]any{"x"})); h.Set("x", mustCBOR(1)) }, CodeInvalidStatement, nil},
		{"crit on an absent header", func(_ *Sign1, h Header) { h.Set(LabelCrit, mustCBOR([]int{258})) }, CodeInvalidStatement, nil},
		{"empty crit", func(_ *Sign1, h Header) { h.Set(LabelCrit, mustCBOR([]int{})) }, CodeInvalidStatement, nil},
		{"detached payload", func(m *Sign1, _ Header) { m.Payload = nil }, CodeInvalidStatement, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ParseStatement(reencode(t, base, tc.edit))
			if codeOf(err) != tc.code {
				t.Fatalf("ParseStatement = %v, want code %q", err, tc.code)
			}
			if err != nil && engine.KindOf(err) != engine.KindInvalid {
				t.Fatalf("error kind %v", engine.KindOf(err))
			}
			if tc.check != nil {
				tc.check(t, st)
			}
		})
	}
}

// Byte-level defects of the COSE_Sign1 envelope itself.
func TestParseStatementEnvelope(t *testing.T) {
	base, _ := signed(t, ES256)
	m, _ := DecodeSign1(base)
	bstr := func(b []byte) []byte { return appendBytes(nil, b) }
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	prot, payload, sig := bstr(m.Protected), bstr(m.Payload), bstr(m.Signature)
	cases := []struct {
		name string
		raw  []byte
		ok   bool
	}{
		{"canonical", join([]byte{0xd2, 0x84}, prot, []byte{0xa0}, payload, sig), true},
		{"empty", nil, false},
		{"untagged", base[1:], false},
		{"tag 17", append([]byte{0xd1}, base[1:]...), false},
		{"tag 18 in two bytes", append([]byte{0xd8, 0x12}, base[1:]...), false},
		{"tag 18 twice", append([]byte{0xd2}, base...), false},
		{"three items", join([]byte{0xd2, 0x83}, prot, []byte{0xa0}, payload), false},
		{"five items", join([]byte{0xd2, 0x85}, prot, []byte{0xa0}, payload, sig, sig), false},
		{"indefinite array", join([]byte{0xd2, 0x9f}, prot, []byte{0xa0}, payload, sig, []byte{0xff}), false},
		{"trailing byte", append(bytes.Clone(base), 0x00), false},
		{"truncated", base[:len(base)-1], false},
		{"protected as a map", join([]byte{0xd2, 0x84}, m.Protected, []byte{0xa0}, payload, sig), false},
		{"unprotected as an array", join([]byte{0xd2, 0x84}, prot, []byte{0x80}, payload, sig), false},
		{"unprotected null", join([]byte{0xd2, 0x84}, prot, []byte{0xf6}, payload, sig), false},
		{"unprotected with a float label", join([]byte{0xd2, 0x84}, prot, []byte{0xa1, 0xf9, 0x3c, 0x00, 0x01}, payload, sig), false},
		{"duplicate unprotected label", join([]byte{0xd2, 0x84}, prot, []byte{0xa2, 0x04, 0x40, 0x04, 0x41, 0x00}, payload, sig), false},
		{"payload text", join([]byte{0xd2, 0x84}, prot, []byte{0xa0, 0x61, 0x78}, sig), false},
		{"payload length not shortest", join([]byte{0xd2, 0x84}, prot, []byte{0xa0, 0x58, byte(len(m.Payload))}, m.Payload, sig), false},
		{"signature text", join([]byte{0xd2, 0x84}, prot, []byte{0xa0}, payload, []byte{0x61, 0x78}), false},
		{"duplicate protected label", join([]byte{0xd2, 0x84}, bstr([]byte{0xa2, 0x01, 0x26, 0x01, 0x26}), []byte{0xa0}, payload, sig), false},
	}
	for _, tc := range cases {
		_, err := ParseStatement(tc.raw)
		if tc.ok != (err == nil) {
			t.Errorf("%s: ParseStatement = %v", tc.name, err)
		}
		if err != nil && codeOf(err) != CodeInvalidStatement {
			t.Errorf("%s: code %q, want InvalidStatement", tc.name, codeOf(err))
		}
	}
}

func TestClaimsDigest(t *testing.T) {
	raw, _ := signed(t, ES256)
	d, err := ClaimsDigest(raw)
	if err != nil {
		t.Fatal(err)
	}
	// SignStatement writes an empty unprotected header, so the digest is
	// that of the statement itself.
	if d != sha256.Sum256(raw) {
		t.Fatal("claims digest of a statement with an empty unprotected header is not its SHA-256")
	}
	withHeaders := reencode(t, raw, func(m *Sign1, _ Header) {
		m.Unprotected = Header{}
		m.Unprotected.Set(LabelReceipts, mustCBOR([][]byte{{1, 2, 3}}))
		m.Unprotected.Set(LabelKID, mustCBOR([]byte("k")))
	})
	if bytes.Equal(withHeaders, raw) {
		t.Fatal("unprotected headers not added")
	}
	st, err := ParseStatement(withHeaders)
	if err != nil {
		t.Fatal(err)
	}
	if st.ClaimsDigest() != d {
		t.Fatal("the parsed statement's claims digest differs from ClaimsDigest's")
	}
	if d2, err := ClaimsDigest(withHeaders); err != nil || d2 != d {
		t.Fatalf("unprotected headers change the claims digest: %v", err)
	}
	other := reencode(t, raw, func(_ *Sign1, h Header) { h.Set(LabelContentType, mustCBOR("text/plain")) })
	if d3, _ := ClaimsDigest(other); d3 == d {
		t.Fatal("a protected header change keeps the claims digest")
	}
	if _, err := ClaimsDigest(raw[1:]); codeOf(err) != CodeInvalidStatement {
		t.Fatalf("untagged: %v", err)
	}
}

func TestHeaderAccessors(t *testing.T) {
	h := Header{}
	h.Set(1, mustCBOR(-7))
	h.Set(int64(2), mustCBOR("t"))
	h.Set(uint64(3), mustCBOR([]byte{9}))
	h.Set("m", mustCBOR(map[int]int{1: 2}))
	if v, ok, err := h.Int(int64(1)); !ok || err != nil || v != -7 {
		t.Errorf("Int = %d %v %v", v, ok, err)
	}
	if v, ok, err := h.Text(2); !ok || err != nil || v != "t" {
		t.Errorf("Text = %q %v %v", v, ok, err)
	}
	if v, ok, err := h.Bytes(3); !ok || err != nil || !bytes.Equal(v, []byte{9}) {
		t.Errorf("Bytes = %v %v %v", v, ok, err)
	}
	if v, ok, err := h.Map("m"); !ok || err != nil || len(v) != 1 {
		t.Errorf("Map = %v %v %v", v, ok, err)
	}
	if _, ok, err := h.Int(2); !ok || err == nil {
		t.Error("Int of text did not fail")
	}
	if _, ok, _ := h.Int(99); ok {
		t.Error("absent label found")
	}
	if _, ok := h.Get(1.5); ok {
		t.Error("float label found")
	}
	enc, err := h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Core deterministic order: 1, 2, 3, then text.
	want := []byte{0xa4, 0x01, 0x26, 0x02, 0x61, 't', 0x03, 0x41, 0x09, 0x61, 'm', 0xa1, 0x01, 0x02}
	if !bytes.Equal(enc, want) {
		t.Errorf("Encode = %x, want %x", enc, want)
	}
	if e, _ := Header(nil).Encode(); !bytes.Equal(e, []byte{0xa0}) {
		t.Errorf("nil header encodes as %x", e)
	}
}

func TestSigStructure(t *testing.T) {
	got := SigStructure([]byte{0xa1, 0x01, 0x26}, []byte("hi"))
	var want []byte
	want, _ = engine.CBOR.Marshal([]any{"Signature1", []byte{0xa1, 0x01, 0x26}, []byte{}, []byte("hi")})
	if !bytes.Equal(got, want) {
		t.Fatalf("SigStructure = %x, want %x", got, want)
	}
}

func TestDefaultAlgorithm(t *testing.T) {
	for _, alg := range []Algorithm{ES256, ES384, ES512, PS256, EdDSA} {
		c := chainFor(t, alg)
		if got, err := DefaultAlgorithm(c.LeafKey.Public()); err != nil || got != alg {
			t.Errorf("DefaultAlgorithm for %s key = %v, %v", alg, got, err)
		}
	}
	if _, err := DefaultAlgorithm("not a key"); codeOf(err) != CodeUnsupportedAlgorithm {
		t.Errorf("DefaultAlgorithm(string) = %v", err)
	}
	if Algorithm(-257).Supported() || Algorithm(-257).String() != "alg(-257)" {
		t.Error("RS256 reported as supported")
	}
}

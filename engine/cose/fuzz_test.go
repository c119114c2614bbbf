package cose

import (
	"bytes"
	"testing"

	"github.com/gavelhq/gavel/engine"
)

func FuzzParseStatement(f *testing.F) {
	for _, alg := range []Algorithm{ES256, EdDSA} {
		raw, _ := signed(f, alg)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := DecodeSign1(raw)
		if err != nil {
			if codeOf(err) != CodeInvalidCOSE {
				t.Fatalf("DecodeSign1 error %v is not InvalidCOSE", err)
			}
		} else {
			enc, err := m.Encode()
			if err != nil {
				t.Fatalf("decoded message does not encode: %v", err)
			}
			m2, err := DecodeSign1(enc)
			if err != nil {
				t.Fatalf("re-encoded message does not decode: %v", err)
			}
			if !bytes.Equal(m.Protected, m2.Protected) || !bytes.Equal(m.Payload, m2.Payload) ||
				(m.Payload == nil) != (m2.Payload == nil) || !bytes.Equal(m.Signature, m2.Signature) {
				t.Fatal("re-encoding changed a signed part")
			}
			if _, err := ClaimsDigest(raw); err != nil {
				t.Fatalf("ClaimsDigest of a decodable message: %v", err)
			}
		}
		st, err := ParseStatement(raw)
		if err != nil {
			if e := engine.AsError(err); e.Kind != engine.KindInvalid || (e.Code != CodeInvalidStatement && e.Code != CodeUnsupportedAlgorithm) {
				t.Fatalf("ParseStatement error %v: kind %v code %q", err, e.Kind, e.Code)
			}
			return
		}
		if st.Issuer == "" || st.Subject == "" || len(st.Chain) == 0 || st.Payload == nil || !st.Alg.Supported() {
			t.Fatalf("accepted an incomplete statement: %+v", st)
		}
		if cd, err := ClaimsDigest(raw); err != nil || cd != st.ClaimsDigest() {
			t.Fatalf("the parsed statement's claims digest is not ClaimsDigest's (%v)", err)
		}
		if err := VerifyStatement(st, testNow); err != nil && engine.KindOf(err) != engine.KindInvalid {
			t.Fatalf("VerifyStatement error %v is not KindInvalid", err)
		}
	})
}

func BenchmarkParseStatement(b *testing.B) {
	raw, _ := signed(b, ES256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseStatement(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyStatement(b *testing.B) {
	for _, alg := range []Algorithm{ES256, PS256, EdDSA} {
		b.Run(alg.String(), func(b *testing.B) {
			raw, _ := signed(b, alg)
			st, err := ParseStatement(raw)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := VerifyStatement(st, testNow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkClaimsDigest(b *testing.B) {
	raw, _ := signed(b, ES256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ClaimsDigest(raw); err != nil {
			b.Fatal(err)
		}
	}
}

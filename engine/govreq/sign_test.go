package govreq

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
)

// ccfPythonEnvelope writes, byte by byte and without gavel's encoder, the
// envelope CCF's Python client makes (python/src/ccf/cose.py,
// create_cose_sign1: python-cwt with alg_auto_inclusion and
// deterministic_header, cbor2). Its protected header holds alg (1), kid (4)
// as a byte string of the certificate fingerprint's hex, then the ccf.gov.*
// text labels, ordered by their encoded bytes (shorter text first); the
// unprotected header is {}; the message has tag 18.
func ccfPythonEnvelope(t *testing.T, key *ecdsa.PrivateKey, kid, typ string, createdAt uint32, proposalID string, payload []byte) []byte {
	t.Helper()
	short := func(n int) byte { // a one-byte length, or a 0x?8 head with one length byte
		if n >= 256 {
			t.Fatalf("length %d does not fit this hand encoder", n)
		}
		return byte(n)
	}
	var p []byte
	if proposalID == "" {
		p = append(p, 0xa4) // map(4)
	} else {
		p = append(p, 0xa5) // map(5)
	}
	p = append(p, 0x01) // 1: alg
	sigLen := 64
	if key.Curve == elliptic.P384() {
		p = append(p, 0x38, 0x22) // -35: ES384
		sigLen = 96
	} else {
		p = append(p, 0x26) // -7: ES256
	}
	p = append(p, 0x04, 0x58, short(len(kid))) // 4: bstr(64)
	p = append(p, kid...)
	p = append(p, 0x70) // text(16)
	p = append(p, "ccf.gov.msg.type"...)
	p = append(p, 0x60|byte(len(typ))) // text(<24)
	p = append(p, typ...)
	p = append(p, 0x76) // text(22)
	p = append(p, "ccf.gov.msg.created_at"...)
	p = append(p, 0x1a) // uint32
	p = binary.BigEndian.AppendUint32(p, createdAt)
	if proposalID != "" {
		p = append(p, 0x77) // text(23)
		p = append(p, "ccf.gov.msg.proposal_id"...)
		p = append(p, 0x78, short(len(proposalID))) // text(64)
		p = append(p, proposalID...)
	}

	bstr := func(b []byte) []byte {
		if len(b) == 0 {
			return []byte{0x40}
		}
		if len(b) < 24 {
			t.Fatalf("keep hand-encoded byte strings ≥ 24 bytes or empty (got %d)", len(b))
		}
		return append([]byte{0x58, short(len(b))}, b...)
	}
	tbs := []byte{0x84, 0x6a}
	tbs = append(tbs, "Signature1"...)
	tbs = append(tbs, bstr(p)...)
	tbs = append(tbs, 0x40) // external_aad h''
	tbs = append(tbs, bstr(payload)...)
	var digest []byte
	if sigLen == 96 {
		d := sha512.Sum384(tbs)
		digest = d[:]
	} else {
		d := sha256.Sum256(tbs)
		digest = d[:]
	}
	r, s, err := ecdsa.Sign(rand.Reader, key, digest)
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, sigLen)
	r.FillBytes(sig[:sigLen/2])
	s.FillBytes(sig[sigLen/2:])

	env := []byte{0xd2, 0x84} // 18([
	env = append(env, bstr(p)...)
	env = append(env, 0xa0) // {}
	env = append(env, bstr(payload)...)
	return append(env, bstr(sig)...)
}

func TestCCFPythonClientLayout(t *testing.T) {
	proposal := []byte(`{"actions":[{"name":"set_constitution","args":{"constitution":"x"}}]}`)
	ballot := []byte(`{"ballot":"export function vote(proposal, proposerId) { return true }"}`)
	cases := []struct {
		name       string
		alg        Algorithm
		typ        MsgType
		proposalID string
		payload    []byte
	}{
		{"ES256 proposal", ES256, MsgProposal, "", proposal},
		{"ES384 ballot", ES384, MsgBallot, testProposalID, ballot},
		{"ES256 withdrawal, empty payload", ES256, MsgWithdrawal, testProposalID, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := testMember(t, c.alg)
			key := m.Key.(*ecdsa.PrivateKey)
			raw := ccfPythonEnvelope(t, key, m.ID, string(c.typ), uint32(testCreatedAt), c.proposalID, c.payload)

			r, err := Parse(raw, 0)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if r.Type != c.typ || r.KeyID != m.ID || r.CreatedAt != testCreatedAt || r.ProposalID != c.proposalID ||
				!bytes.Equal(r.Payload, c.payload) || r.Alg != c.alg || !bytes.Equal(r.Raw, raw) {
				t.Fatalf("Parse gave %+v", r)
			}
			if err := r.Verify(m.Cert); err != nil {
				t.Fatalf("Verify: %v", err)
			}

			// gavel writes the same bytes, signature aside.
			protected, err := EncodeProtected(c.alg, m.ID, c.typ, testCreatedAt, c.proposalID)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(protected, r.Protected) {
				t.Fatalf("EncodeProtected\n %x\nCCF layout\n %x", protected, r.Protected)
			}
			signed, err := Sign(m.Key, m.Cert, c.typ, c.proposalID, time.Unix(testCreatedAt, 0), c.payload)
			if err != nil {
				t.Fatal(err)
			}
			n := signatureSize(c.alg)
			if len(signed) != len(raw) || !bytes.Equal(signed[:len(signed)-n], raw[:len(raw)-n]) {
				t.Fatalf("Sign\n %x\nCCF layout\n %x", signed, raw)
			}
		})
	}
}

func TestSignRoundTrip(t *testing.T) {
	for _, alg := range []Algorithm{ES256, ES384, EdDSA} {
		t.Run(alg.String(), func(t *testing.T) {
			m := testMember(t, alg)
			at := time.Unix(testCreatedAt, 999_000_000) // sub-second part is dropped
			for _, c := range []struct {
				typ        MsgType
				proposalID string
				payload    []byte
			}{
				{MsgProposal, "", []byte(`{"actions":[]}`)},
				{MsgBallot, testProposalID, []byte(`{"ballot":"export function vote() { return true }"}`)},
				{MsgWithdrawal, testProposalID, nil},
				{MsgProposal, "", bytes.Repeat([]byte("x"), 70000)}, // 4-byte length head
			} {
				raw, err := m.Sign(c.typ, c.proposalID, at, c.payload)
				if err != nil {
					t.Fatal(err)
				}
				r, err := Parse(raw, 0)
				if err != nil {
					t.Fatalf("%s: Parse: %v", c.typ, err)
				}
				if r.Type != c.typ || r.ProposalID != c.proposalID || r.CreatedAt != testCreatedAt ||
					r.KeyID != m.ID || r.Alg != alg || !bytes.Equal(r.Payload, c.payload) || r.Payload == nil {
					t.Fatalf("%s: Parse gave %+v", c.typ, r)
				}
				if err := r.Verify(m.Cert); err != nil {
					t.Fatalf("%s: Verify: %v", c.typ, err)
				}
				if err := VerifySign1(raw, m.Cert.PublicKey, nil); err != nil {
					t.Fatalf("%s: VerifySign1: %v", c.typ, err)
				}
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	es256, es384 := testMember(t, ES256), testMember(t, ES384)
	at := time.Unix(testCreatedAt, 0)
	block, _ := pem.Decode(readFixture(t, "openssl", "rsa_privk.pem"))
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := parsed.(*rsa.PrivateKey)
	rsaCert := selfSigned(t, rsaKey.Public(), rsaKey)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name string
		sign func() ([]byte, error)
		code string
	}{
		{"key is not the certificate's", func() ([]byte, error) {
			return Sign(es384.Key, es256.Cert, MsgProposal, "", at, nil)
		}, "InvalidKey"},
		{"another Ed25519 key", func() ([]byte, error) {
			return Sign(edKey, testMember(t, EdDSA).Cert, MsgProposal, "", at, nil)
		}, "InvalidKey"},
		{"no key", func() ([]byte, error) { return Sign(nil, es256.Cert, MsgProposal, "", at, nil) }, "InvalidKey"},
		{"no certificate", func() ([]byte, error) { return Sign(es256.Key, nil, MsgProposal, "", at, nil) }, "InvalidKey"},
		{"RSA certificate", func() ([]byte, error) { return Sign(rsaKey, rsaCert, MsgProposal, "", at, nil) }, "UnsupportedAlgorithm"},
		{"ballot without proposal id", func() ([]byte, error) { return es256.Sign(MsgBallot, "", at, nil) }, "InvalidHeader"},
		{"withdrawal with a bad proposal id", func() ([]byte, error) { return es256.Sign(MsgWithdrawal, "abc", at, nil) }, "InvalidHeader"},
		{"proposal with a proposal id", func() ([]byte, error) { return es256.Sign(MsgProposal, testProposalID, at, nil) }, "InvalidHeader"},
		{"CCF recovery_share", func() ([]byte, error) { return es256.Sign("recovery_share", "", at, nil) }, "InvalidHeader"},
		{"before 1970", func() ([]byte, error) { return es256.Sign(MsgProposal, "", time.Unix(-1, 0), nil) }, "InvalidHeader"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw, err := c.sign()
			if err == nil {
				t.Fatalf("signed: %x", raw)
			}
			if e := engine.AsError(err); e.Code != c.code || e.Kind != engine.KindInvalid {
				t.Fatalf("got %v, want %s", err, c.code)
			}
		})
	}
}

func selfSigned(t *testing.T, pub, priv any) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestECDSADERToRaw(t *testing.T) {
	cases := []struct {
		name string
		der  []byte
		ok   bool
		want []byte
	}{
		{"small r and s padded", []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02}, true,
			append(append(make([]byte, 31), 1), append(make([]byte, 31), 2)...)},
		{"sign byte dropped", append([]byte{0x30, 0x46, 0x02, 0x21, 0x00}, append(bytes.Repeat([]byte{0xff}, 32),
			append([]byte{0x02, 0x21, 0x00}, bytes.Repeat([]byte{0x80}, 32)...)...)...), true,
			append(bytes.Repeat([]byte{0xff}, 32), bytes.Repeat([]byte{0x80}, 32)...)},
		{"r too long", append([]byte{0x30, 0x26, 0x02, 0x21, 0x01}, append(make([]byte, 32), 0x02, 0x01, 0x01)...), false, nil},
		{"zero r", []byte{0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x02}, false, nil},
		{"trailing bytes", []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02, 0x00}, false, nil},
		{"not DER", []byte{0x01, 0x02}, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := ecdsaDERToRaw(c.der, 32)
			if ok != c.ok || !bytes.Equal(got, c.want) {
				t.Fatalf("got %x, %v; want %x, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

func TestAppendBytesMatchesEncoder(t *testing.T) {
	for _, n := range []int{0, 1, 23, 24, 255, 256, 65535, 65536} {
		data := bytes.Repeat([]byte{7}, n)
		want, err := engine.CBOR.Marshal(data)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendBytes(nil, data); !bytes.Equal(got, want) {
			t.Fatalf("length %d: head %x, encoder %x", n, got[:min(len(got), 9)], want[:min(len(want), 9)])
		}
	}
}

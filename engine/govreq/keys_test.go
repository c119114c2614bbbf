package govreq

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
)

func readFixture(t testing.TB, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"testdata"}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKeygen(t *testing.T) {
	for _, name := range []string{"ES256", "ES384", "EdDSA", "eddsa"} {
		t.Run(name, func(t *testing.T) {
			certPEM, keyPEM, err := Keygen(name, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
				t.Fatalf("key PEM is not PKCS#8: %s", keyPEM)
			}
			m, err := LoadMember(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := ParseAlgorithm(name)
			if m.Alg != want || m.Cert.Subject.CommonName != "alice" || m.ID != MemberID(m.Cert) {
				t.Fatalf("got alg %s, CN %q, id %s", m.Alg, m.Cert.Subject.CommonName, m.ID)
			}
			if err := m.Cert.CheckSignature(m.Cert.SignatureAlgorithm, m.Cert.RawTBSCertificate, m.Cert.Signature); err != nil {
				t.Fatalf("certificate is not self-signed: %v", err)
			}
			if d := m.Cert.NotAfter.Sub(m.Cert.NotBefore); d != MemberCertValidity {
				t.Fatalf("validity %s", d)
			}
			if time.Since(m.Cert.NotBefore) < 0 || time.Since(m.Cert.NotBefore) > time.Hour {
				t.Fatalf("NotBefore %s is not now", m.Cert.NotBefore)
			}
		})
	}
	if _, _, err := Keygen("RS256", "alice"); codeOf(err) != "UnsupportedAlgorithm" {
		t.Fatalf("RS256: %v", err)
	}
	if _, _, err := Keygen("ES256", ""); codeOf(err) != "InvalidName" {
		t.Fatalf("no name: %v", err)
	}
}

// TestOpenSSLMembers loads member identities made by OpenSSL as CCF's
// keygenerator.sh makes them, and checks gavel's member id against the one
// sha256sum computed.
func TestOpenSSLMembers(t *testing.T) {
	for _, c := range []struct {
		member string
		alg    Algorithm
	}{{"member0", ES384}, {"member1", ES256}, {"member2", EdDSA}} {
		t.Run(c.member, func(t *testing.T) {
			m, err := LoadMember(readFixture(t, "openssl", c.member+"_cert.pem"), readFixture(t, "openssl", c.member+"_privk.pem"))
			if err != nil {
				t.Fatal(err)
			}
			wantID := strings.TrimSpace(string(readFixture(t, "openssl", c.member+"_id.txt")))
			if m.ID != wantID || m.Alg != c.alg {
				t.Fatalf("id %s alg %s; want %s %s", m.ID, m.Alg, wantID, c.alg)
			}
			raw, err := m.Sign(MsgProposal, "", time.Unix(testCreatedAt, 0), []byte(`{"actions":[]}`))
			if err != nil {
				t.Fatal(err)
			}
			r, err := Parse(raw, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Verify(m.Cert); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLoadMemberRefuses(t *testing.T) {
	cert0 := readFixture(t, "openssl", "member0_cert.pem")
	key0 := readFixture(t, "openssl", "member0_privk.pem")
	key1 := readFixture(t, "openssl", "member1_privk.pem")
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0x00}})
	cases := []struct {
		name      string
		cert, key []byte
		code      string
	}{
		{"key of another member", cert0, key1, "InvalidKey"},
		{"no certificate", nil, key0, "InvalidCertificate"},
		{"certificate garbage", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), key0, "InvalidCertificate"},
		{"key PEM holds a certificate", cert0, cert0, "InvalidKey"},
		{"no key", cert0, nil, "InvalidKey"},
		{"encrypted key", cert0, encrypted, "InvalidKey"},
		{"PKCS#8 garbage", cert0, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), "InvalidKey"},
		{"SEC1 garbage", cert0, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}}), "InvalidKey"},
		{"RSA key", cert0, readFixture(t, "openssl", "rsa_privk.pem"), "UnsupportedAlgorithm"},
		{"Ed448 key", cert0, readFixture(t, "openssl", "ed448_privk.pem"), "InvalidKey"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := LoadMember(c.cert, c.key)
			if err == nil {
				t.Fatalf("loaded %s", m.ID)
			}
			if e := engine.AsError(err); e.Code != c.code || e.Kind != engine.KindInvalid {
				t.Fatalf("got %v, want %s", err, c.code)
			}
		})
	}
}

func TestParsePrivateKeyPEMFormats(t *testing.T) {
	m := testMember(t, ES256)
	k := m.Key.(*ecdsa.PrivateKey)
	sec1, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string][]byte{
		"SEC1":   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
		"PKCS#8": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	} {
		got, err := ParsePrivateKeyPEM(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !got.(*ecdsa.PrivateKey).Equal(k) {
			t.Fatalf("%s: another key", name)
		}
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	pub, err := ParsePublicKeyPEM(readFixture(t, "openssl", "member1_pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadMember(readFixture(t, "openssl", "member1_cert.pem"), readFixture(t, "openssl", "member1_privk.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !pub.(*ecdsa.PublicKey).Equal(m.Cert.PublicKey) {
		t.Fatal("PKIX key is not the certificate's")
	}
	fromCert, err := ParsePublicKeyPEM(readFixture(t, "openssl", "member2_cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fromCert.(ed25519.PublicKey); !ok {
		t.Fatalf("member2's key is %T", fromCert)
	}
	for name, p := range map[string][]byte{
		"nothing":     nil,
		"private key": readFixture(t, "openssl", "member1_privk.pem"), // starts with EC PARAMETERS
		"garbage":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}),
	} {
		if _, err := ParsePublicKeyPEM(p); codeOf(err) != "InvalidKey" {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

// TestCCFPythonRequests checks requests written in the layout of CCF's
// Python client, signed by pyca/cryptography (testdata/ccf-python/gen.py).
func TestCCFPythonRequests(t *testing.T) {
	load := func(member string) *Member {
		m, err := LoadMember(readFixture(t, "openssl", member+"_cert.pem"), readFixture(t, "openssl", member+"_privk.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	member0, member1 := load("member0"), load("member1")
	proposalRaw := readFixture(t, "ccf-python", "proposal.cose")
	proposalID := ProposalID(proposalRaw)
	for _, c := range []struct {
		file      string
		signer    *Member
		typ       MsgType
		createdAt int64
		proposal  string
	}{
		{"proposal.cose", member0, MsgProposal, testCreatedAt, ""},
		{"ballot.cose", member1, MsgBallot, testCreatedAt + 1, proposalID},
		{"withdrawal.cose", member0, MsgWithdrawal, testCreatedAt + 2, proposalID},
	} {
		t.Run(c.file, func(t *testing.T) {
			raw := readFixture(t, "ccf-python", c.file)
			r, err := Parse(raw, 0)
			if err != nil {
				t.Fatal(err)
			}
			if r.Type != c.typ || r.KeyID != c.signer.ID || r.CreatedAt != c.createdAt || r.ProposalID != c.proposal {
				t.Fatalf("Parse gave %+v", r)
			}
			if err := r.Verify(c.signer.Cert); err != nil {
				t.Fatal(err)
			}
			signed, err := c.signer.Sign(c.typ, c.proposal, time.Unix(c.createdAt, 0), r.Payload)
			if err != nil {
				t.Fatal(err)
			}
			n := signatureSize(c.signer.Alg)
			if len(signed) != len(raw) || !bytes.Equal(signed[:len(raw)-n], raw[:len(raw)-n]) {
				t.Fatalf("gavel's Sign\n %x\ndiffers from the CCF client's\n %x", signed, raw)
			}
		})
	}
}

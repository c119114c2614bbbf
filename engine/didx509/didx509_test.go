package didx509

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"testing/quick"
	"time"

	"github.com/gavelhq/gavel/engine"
)

var (
	t0        = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	validAt   = t0.Add(30 * 24 * time.Hour)
	testOID   = "1.3.6.1.4.1.311.76.59.1.2"
	fulcioURL = "https://accounts.example.com"
)

type keyed struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var serial int64

// mkcert issues tmpl under parent (self-signed when parent is nil), valid
// for a year from t0 unless tmpl says otherwise.
func mkcert(t testing.TB, tmpl *x509.Certificate, parent *keyed) keyed {
	t.Helper()
	key := newKey(t)
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = t0, t0.AddDate(1, 0, 0)
	}
	parentCert, parentKey := tmpl, key
	if parent != nil {
		parentCert, parentKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return keyed{c, key}
}

func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

func leafTemplate() *x509.Certificate {
	u, _ := url.Parse("https://example.com/a%20b?x=1")
	oid := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 76, 59, 1, 2}
	return &x509.Certificate{
		Subject: pkix.Name{
			CommonName: "Signer: One", Organization: []string{"Example Org"}, Country: []string{"US"},
			SerialNumber: "42",
		},
		KeyUsage:           x509.KeyUsageDigitalSignature,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{oid},
		EmailAddresses:     []string{"bob@example.com"},
		DNSNames:           []string{"signer.example.com"},
		URIs:               []*url.URL{u},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}, Value: []byte(fulcioURL)},
		},
	}
}

type fixture struct {
	root, inter, leaf keyed
	chain             []*x509.Certificate
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	root := mkcert(t, caTemplate("Root"), nil)
	inter := mkcert(t, caTemplate("Intermediate"), &root)
	leaf := mkcert(t, leafTemplate(), &inter)
	return fixture{root, inter, leaf, []*x509.Certificate{leaf.cert, inter.cert, root.cert}}
}

func fp(c *x509.Certificate, alg string) string { return encodeFingerprint(Fingerprint(c, alg)) }

func TestParse(t *testing.T) {
	const fp256 = "I__iuL25oXEVFdTP_aBLx_eT1RPHbCQ_ECBQfYZpt9s"
	valid := []struct {
		did   string
		preds []Predicate
	}{
		{"did:x509:0:sha256:" + fp256 + "::eku:1.3.6.1.4.1.311.76.59.1.2", []Predicate{{"eku", "1.3.6.1.4.1.311.76.59.1.2"}}},
		{"did:x509:0:sha256:" + fp256 + "::subject:C:US:O:Example%20Org", []Predicate{{"subject", "C:US:O:Example%20Org"}}},
		{"did:x509:0:sha256:" + fp256 + "::subject:2.5.4.5:42", []Predicate{{"subject", "2.5.4.5:42"}}},
		{"did:x509:0:sha256:" + fp256 + "::san:email:bob%40example.com::eku:1.2", []Predicate{{"san", "email:bob%40example.com"}, {"eku", "1.2"}}},
		{"did:x509:0:sha256:" + fp256 + "::fulcio-issuer:accounts.example.com", []Predicate{{"fulcio-issuer", "accounts.example.com"}}},
		{"did:x509:0:sha384:" + strings.Repeat("A", 64) + "::eku:1.2", []Predicate{{"eku", "1.2"}}},
		{"did:x509:0:sha512:" + strings.Repeat("_", 85) + "w::eku:1.2", []Predicate{{"eku", "1.2"}}},
	}
	for _, c := range valid {
		d, err := Parse(c.did)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.did, err)
			continue
		}
		if d.String() != c.did {
			t.Errorf("String() = %q, want %q", d.String(), c.did)
		}
		if len(d.Predicates) != len(c.preds) {
			t.Errorf("%q: predicates %v, want %v", c.did, d.Predicates, c.preds)
			continue
		}
		for i := range c.preds {
			if d.Predicates[i] != c.preds[i] {
				t.Errorf("%q: predicate %d = %v, want %v", c.did, i, d.Predicates[i], c.preds[i])
			}
		}
	}
	invalid := []struct{ did, why string }{
		{"", "empty"},
		{"did:web:example.com", "other method"},
		{"did:x509:1:sha256:" + fp256 + "::eku:1.2", "version 1"},
		{"did:x509::sha256:" + fp256 + "::eku:1.2", "empty version"},
		{"did:x509:0:sha256:" + fp256, "no predicate"},
		{"did:x509:0:md5:" + fp256 + "::eku:1.2", "unknown hash"},
		{"did:x509:0:sha256:" + fp256[:40] + "::eku:1.2", "short fingerprint"},
		{"did:x509:0:sha256:" + fp256 + "=::eku:1.2", "padded fingerprint"},
		{"did:x509:0:sha256:" + fp256 + ":x::eku:1.2", "extra fingerprint part"},
		{"did:x509:0:sha384:" + fp256 + "::eku:1.2", "sha256 size under sha384"},
		{"did:x509:0:sha256:" + fp256 + "::eku", "predicate without value"},
		{"did:x509:0:sha256:" + fp256 + "::eku:", "empty value"},
		{"did:x509:0:sha256:" + fp256 + "::eku:1.2::", "trailing separator"},
		{"did:x509:0:sha256:" + fp256 + "::eku:1..2", "bad OID"},
		{"did:x509:0:sha256:" + fp256 + "::eku:1.2:3", "two eku values"},
		{"did:x509:0:sha256:" + fp256 + "::foo:bar", "unknown predicate"},
		{"did:x509:0:sha256:" + fp256 + "::subject:CN", "odd subject"},
		{"did:x509:0:sha256:" + fp256 + "::subject:CN:a:CN:b", "repeated subject key"},
		{"did:x509:0:sha256:" + fp256 + "::subject:cn:a", "lower-case label"},
		{"did:x509:0:sha256:" + fp256 + "::subject:CN:a b", "unencoded space"},
		{"did:x509:0:sha256:" + fp256 + "::subject:CN:a%2", "truncated escape"},
		{"did:x509:0:sha256:" + fp256 + "::subject:CN:a%zz", "bad escape"},
		{"did:x509:0:sha256:" + fp256 + "::subject:CN::O:b", "empty segment"},
		{"did:x509:0:sha256:" + fp256 + "::san:ip:1.2.3.4", "unsupported SAN type"},
		{"did:x509:0:sha256:" + fp256 + "::san:email", "SAN without value"},
		{"did:x509:0:sha256:" + fp256 + "::fulcio-issuer:a:b", "fulcio with colon"},
		{"did:x509:0:sha256:" + fp256 + "::eku:1.2#frag", "DID URL fragment"},
		{"did:x509:0:sha256:" + fp256 + "::eku:1.2/path", "DID URL path"},
		{"did:x509:0:sha256:" + fp256 + "::eku:1.2?q", "DID URL query"},
	}
	for _, c := range invalid {
		_, err := Parse(c.did)
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: Parse(%q) = %v, want ErrSyntax", c.why, c.did, err)
			continue
		}
		if e := engine.AsError(err); e.Kind != engine.KindInvalid || e.Code != CodeInvalidIssuer {
			t.Errorf("%s: error %v is not KindInvalid/InvalidIssuer", c.why, err)
		}
	}
}

func TestResolve(t *testing.T) {
	f := newFixture(t)
	rootFP, interFP := fp(f.root.cert, "sha256"), fp(f.inter.cert, "sha384")
	base := "did:x509:0:sha256:" + rootFP
	cases := []struct {
		name  string
		did   string
		chain []*x509.Certificate
		at    time.Time
		want  error // nil: resolves to the leaf key
	}{
		{"eku, root pinned", base + "::eku:" + testOID, f.chain, validAt, nil},
		{"standard eku", base + "::eku:1.3.6.1.5.5.7.3.3", f.chain, validAt, nil},
		{"subject, intermediate pinned by sha384", "did:x509:0:sha384:" + interFP + "::subject:CN:Signer%3A%20One:O:Example%20Org", f.chain, validAt, nil},
		{"subject by OID for an unlabeled attribute", base + "::subject:2.5.4.5:42:C:US", f.chain, validAt, nil},
		{"san email, sha512", "did:x509:0:sha512:" + fp(f.root.cert, "sha512") + "::san:email:bob%40example.com", f.chain, validAt, nil},
		{"san dns", base + "::san:dns:signer.example.com", f.chain, validAt, nil},
		{"san uri verbatim", base + "::san:uri:" + PercentEncode("https://example.com/a%20b?x=1"), f.chain, validAt, nil},
		{"fulcio issuer", base + "::fulcio-issuer:accounts.example.com", f.chain, validAt, nil},
		{"all predicates", base + "::eku:" + testOID + "::subject:C:US::san:dns:signer.example.com::fulcio-issuer:accounts.example.com", f.chain, validAt, nil},
		{"chain ending at the pinned intermediate", "did:x509:0:sha256:" + fp(f.inter.cert, "sha256") + "::eku:" + testOID, f.chain[:2], validAt, nil},

		{"malformed", "did:x509:0:sha256:" + rootFP, f.chain, validAt, ErrSyntax},
		{"leaf pinned", "did:x509:0:sha256:" + fp(f.leaf.cert, "sha256") + "::eku:" + testOID, f.chain, validAt, ErrFingerprint},
		{"unknown CA", "did:x509:0:sha256:" + fp(newFixture(t).root.cert, "sha256") + "::eku:" + testOID, f.chain, validAt, ErrFingerprint},
		{"eku absent from leaf", base + "::eku:1.2.3", f.chain, validAt, ErrPredicate},
		{"subject value differs", base + "::subject:CN:Signer%3A%20Two", f.chain, validAt, ErrPredicate},
		{"subject key absent", base + "::subject:OU:x", f.chain, validAt, ErrPredicate},
		{"subject CN by OID", base + "::subject:2.5.4.3:Signer%3A%20One", f.chain, validAt, ErrPredicate},
		{"subject matched in the CA only", base + "::subject:CN:Intermediate", f.chain, validAt, ErrPredicate},
		{"san value differs", base + "::san:email:alice%40example.com", f.chain, validAt, ErrPredicate},
		{"san type differs", base + "::san:dns:bob%40example.com", f.chain, validAt, ErrPredicate},
		{"fulcio differs", base + "::fulcio-issuer:other.example.com", f.chain, validAt, ErrPredicate},
		{"one of two predicates fails", base + "::eku:" + testOID + "::san:dns:other.example.com", f.chain, validAt, ErrPredicate},
		{"before validity", base + "::eku:" + testOID, f.chain, t0.Add(-time.Second), ErrChain},
		{"after validity", base + "::eku:" + testOID, f.chain, t0.AddDate(1, 0, 1), ErrChain},
		{"single certificate", base + "::eku:" + testOID, f.chain[:1], validAt, ErrChain},
		{"no certificate", base + "::eku:" + testOID, nil, validAt, ErrChain},
		{"reordered chain", base + "::eku:" + testOID, []*x509.Certificate{f.leaf.cert, f.root.cert, f.inter.cert}, validAt, ErrChain},
		{"missing intermediate", base + "::eku:" + testOID, []*x509.Certificate{f.leaf.cert, f.root.cert}, validAt, ErrChain},
		{"nil certificate", base + "::eku:" + testOID, []*x509.Certificate{f.leaf.cert, nil, f.root.cert}, validAt, ErrChain},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key, err := Resolve(c.did, c.chain, c.at)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Resolve: %v", err)
				}
				if !f.leaf.key.Public().(*ecdsa.PublicKey).Equal(key) {
					t.Fatal("resolved key is not the leaf key")
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Resolve = %v, want %v", err, c.want)
			}
			if key != nil {
				t.Fatal("a key came back with an error")
			}
			if e := engine.AsError(err); e.Kind != engine.KindInvalid || e.Code != CodeInvalidIssuer {
				t.Fatalf("error %v is not KindInvalid/InvalidIssuer", err)
			}
		})
	}
}

// Chains that RFC 5280 or the method rejects even though every fingerprint
// and predicate would match.
func TestResolveRejectsBadChains(t *testing.T) {
	root := mkcert(t, caTemplate("Root"), nil)
	did := func(r *x509.Certificate) string {
		s, err := New(r, EKU(testOID))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		name  string
		chain func(t *testing.T) []*x509.Certificate
		want  error
	}{
		{"unknown critical extension", func(t *testing.T) []*x509.Certificate {
			tmpl := leafTemplate()
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}})
			return []*x509.Certificate{mkcert(t, tmpl, &root).cert, root.cert}
		}, ErrChain},
		{"critical Fulcio issuer", func(t *testing.T) []*x509.Certificate {
			tmpl := leafTemplate()
			tmpl.ExtraExtensions[0].Critical = true
			return []*x509.Certificate{mkcert(t, tmpl, &root).cert, root.cert}
		}, ErrChain},
		{"issuer without keyCertSign", func(t *testing.T) []*x509.Certificate {
			tmpl := caTemplate("No cert sign")
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
			ca := mkcert(t, tmpl, nil)
			return []*x509.Certificate{mkcert(t, leafTemplate(), &ca).cert, ca.cert}
		}, ErrChain},
		{"issuer is not a CA", func(t *testing.T) []*x509.Certificate {
			tmpl := caTemplate("Not a CA")
			tmpl.IsCA = false
			tmpl.KeyUsage = 0
			ca := mkcert(t, tmpl, nil)
			return []*x509.Certificate{mkcert(t, leafTemplate(), &ca).cert, ca.cert}
		}, ErrChain},
		{"signed by another key", func(t *testing.T) []*x509.Certificate {
			impostor := mkcert(t, caTemplate("Root"), nil) // same name, other key
			return []*x509.Certificate{mkcert(t, leafTemplate(), &impostor).cert, root.cert}
		}, ErrChain},
		{"leaf may not sign", func(t *testing.T) []*x509.Certificate {
			tmpl := leafTemplate()
			tmpl.KeyUsage = x509.KeyUsageKeyAgreement
			return []*x509.Certificate{mkcert(t, tmpl, &root).cert, root.cert}
		}, ErrPredicate},
		{"leaf subject repeats an attribute", func(t *testing.T) []*x509.Certificate {
			tmpl := leafTemplate()
			tmpl.Subject.OrganizationalUnit = []string{"a", "b"}
			return []*x509.Certificate{mkcert(t, tmpl, &root).cert, root.cert}
		}, nil}, // eku still matches; only subject predicates would fail
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			chain := c.chain(t)
			_, err := Resolve(did(chain[len(chain)-1]), chain, validAt)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Resolve: %v", err)
				}
				s, _ := New(chain[len(chain)-1], Subject("OU", "a"))
				if _, err := Resolve(s, chain, validAt); !errors.Is(err, ErrPredicate) {
					t.Fatalf("subject on a repeated attribute = %v, want ErrPredicate", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Resolve = %v, want %v", err, c.want)
			}
		})
	}
}

func TestBuilders(t *testing.T) {
	f := newFixture(t)
	preds := []Predicate{
		EKU(testOID),
		Subject("CN", "Signer: One", "O", "Example Org"),
		SAN(SANEmail, "bob@example.com"),
		SAN(SANURI, "https://example.com/a%20b?x=1"),
		FulcioIssuer(fulcioURL),
	}
	did, err := ForChain(f.chain, preds...)
	if err != nil {
		t.Fatal(err)
	}
	want := "did:x509:0:sha256:" + fp(f.root.cert, "sha256") +
		"::eku:" + testOID +
		"::subject:CN:Signer%3A%20One:O:Example%20Org" +
		"::san:email:bob%40example.com" +
		"::san:uri:https%3A%2F%2Fexample.com%2Fa%2520b%3Fx%3D1" +
		"::fulcio-issuer:accounts.example.com"
	if did != want {
		t.Fatalf("ForChain = %q\nwant       %q", did, want)
	}
	if _, err := Resolve(did, f.chain, validAt); err != nil {
		t.Fatalf("Resolve(ForChain): %v", err)
	}
	if _, err := ForChain(f.chain[:1], EKU(testOID)); !errors.Is(err, ErrChain) {
		t.Errorf("ForChain of one certificate = %v, want ErrChain", err)
	}
	if _, err := New(f.root.cert, EKU("not-an-oid")); !errors.Is(err, ErrSyntax) {
		t.Errorf("New with a bad OID = %v, want ErrSyntax", err)
	}
	if _, err := New(f.root.cert); !errors.Is(err, ErrSyntax) {
		t.Errorf("New without predicates = %v, want ErrSyntax", err)
	}
}

func TestPercentEncoding(t *testing.T) {
	cases := map[string]string{
		"abc-._XYZ09": "abc-._XYZ09",
		"a b":         "a%20b",
		"~":           "%7E",
		"bob@x.com":   "bob%40x.com",
		"é":           "%C3%A9",
		":%/":         "%3A%25%2F",
	}
	for in, want := range cases {
		if got := PercentEncode(in); got != want {
			t.Errorf("PercentEncode(%q) = %q, want %q", in, got, want)
		}
	}
	roundTrip := func(s string) bool {
		enc := PercentEncode(s)
		return percentDecode(enc) == s && (s == "" || isIDChars(enc))
	}
	if err := quick.Check(roundTrip, nil); err != nil {
		t.Error(err)
	}
	if got := percentDecode("a%2fb%2F"); got != "a/b/" {
		t.Errorf("lower- and upper-case escapes decode to %q", got)
	}
}

func FuzzParseDID(f *testing.F) {
	f.Add("did:x509:0:sha256:I__iuL25oXEVFdTP_aBLx_eT1RPHbCQ_ECBQfYZpt9s::eku:1.3.6.1.4.1.311.76.59.1.2")
	f.Add("did:x509:0:sha256:I__iuL25oXEVFdTP_aBLx_eT1RPHbCQ_ECBQfYZpt9s::subject:CN:a%20b::san:email:x%40y")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse error %v does not wrap ErrSyntax", err)
			}
			return
		}
		if d.String() != s {
			t.Fatalf("String() = %q, input %q", d.String(), s)
		}
		if len(d.Predicates) == 0 || len(d.Fingerprint) != fingerprintSizes[d.FingerprintAlg] {
			t.Fatalf("accepted %q with %d predicates and a %d-byte fingerprint", s, len(d.Predicates), len(d.Fingerprint))
		}
		for _, p := range d.Predicates {
			_ = percentDecode(p.Value)
		}
	})
}

func BenchmarkResolve(b *testing.B) {
	f := newFixture(b)
	did, err := ForChain(f.chain, EKU(testOID), Subject("CN", "Signer: One"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Resolve(did, f.chain, validAt); err != nil {
			b.Fatal(err)
		}
	}
}

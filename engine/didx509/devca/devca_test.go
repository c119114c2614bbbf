package devca

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/didx509"
)

func TestChainsResolve(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opts Options
		n    int
	}{
		{"defaults", Options{Now: now}, 2},
		{"intermediate", Options{Now: now, Intermediate: true}, 3},
		{"ed25519 leaf, own eku, SANs", Options{Now: now, LeafKey: edKey, EKU: "1.2.3.4", EmailAddresses: []string{"a@b.c"}, URIs: []string{"https://x.example/y"}}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch, err := New(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(ch.Certs) != c.n || ch.Leaf() != ch.Certs[0] || ch.Root() != ch.Certs[c.n-1] {
				t.Fatalf("chain has %d certificates", len(ch.Certs))
			}
			key, err := didx509.Resolve(ch.Issuer(), ch.Certs, now)
			if err != nil {
				t.Fatalf("Resolve(Issuer()): %v", err)
			}
			if !key.(interface{ Equal(crypto.PublicKey) bool }).Equal(ch.LeafKey.Public()) {
				t.Fatal("resolved key is not the leaf key")
			}
			if _, err := didx509.Resolve(ch.Issuer(), ch.Certs, now.Add(-2*time.Hour)); err == nil {
				t.Fatal("chain resolves before its validity")
			}
			for _, u := range c.opts.URIs {
				did, _ := didx509.ForChain(ch.Certs, didx509.SAN(didx509.SANURI, u))
				if _, err := didx509.Resolve(did, ch.Certs, now); err != nil {
					t.Errorf("SAN URI %q: %v", u, err)
				}
			}
		})
	}
}

func TestPEM(t *testing.T) {
	ch, err := New(Options{Intermediate: true})
	if err != nil {
		t.Fatal(err)
	}
	rest := ch.CertsPEM()
	for i := 0; ; i++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if i != 3 {
				t.Fatalf("%d PEM certificates, want 3", i)
			}
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil || !c.Equal(ch.Certs[i]) {
			t.Fatalf("PEM certificate %d differs: %v", i, err)
		}
	}
	k, err := ch.LeafKeyPEM()
	if err != nil || !strings.HasPrefix(string(k), "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("LeafKeyPEM: %v", err)
	}
	if _, err := New(Options{EKU: "x.y"}); err == nil {
		t.Fatal("bad EKU accepted")
	}
}

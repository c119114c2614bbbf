package integration

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

func mustKey(t testing.TB, certPEM []byte) crypto.PublicKey {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.PublicKey
}

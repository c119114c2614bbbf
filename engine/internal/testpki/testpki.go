// Package testpki owns the service identities tests make: a self-signed CA
// certificate for a key, and a committed PKCS #8 key read back (so that
// fuzz seeds signed with it stay verifiable across runs). Only tests
// import it.
package testpki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"time"
)

// SelfSigned is a CA certificate for key, named cn, valid from notBefore
// to notAfter, as a CCF service certificate is (serial 1).
func SelfSigned(key crypto.Signer, cn string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("testpki: %w", err)
	}
	return x509.ParseCertificate(der)
}

// ReadKey reads a PEM PKCS #8 private key file.
func ReadKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("testpki: %s is not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("testpki: %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("testpki: %s holds a %T, not a signing key", path, k)
	}
	return s, nil
}

// Package issuer owns a self-contained did:x509 issuer for demos, tests and
// benchmarks: a root CA, a leaf certificate with a code-signing EKU, and the
// did:x509 that pins the root and requires that EKU. Real issuers bring
// their own chains; this one lets gavel exercise the real verification path
// without any outside material.
package issuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/didx509"
)

// EKU is the extended key usage the leaf carries and the DID requires.
const EKU = "1.3.6.1.4.1.311.10.3.13" // lifetime signing, as Azure's code-signing chains use

// Issuer is a CA and leaf pair with its DID.
type Issuer struct {
	RootKey crypto.Signer
	Root    *x509.Certificate
	LeafKey crypto.Signer
	Leaf    *x509.Certificate
	DID     string
}

// Chain is the x5chain, leaf first.
func (i *Issuer) Chain() []*x509.Certificate { return []*x509.Certificate{i.Leaf, i.Root} }

// New makes an issuer whose leaf key is of the given algorithm: "ES256",
// "ES384", "ES512", "PS256" (RSA-2048) or "EdDSA". Certificates are valid
// from notBefore for a year.
func New(alg string, notBefore time.Time) (*Issuer, error) {
	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	var leafKey crypto.Signer
	switch alg {
	case "ES256":
		leafKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		leafKey, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		leafKey, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "PS256", "PS384", "PS512":
		leafKey, err = rsa.GenerateKey(rand.Reader, 2048)
	case "EdDSA":
		_, leafKey, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("issuer: unknown algorithm %q", alg)
	}
	if err != nil {
		return nil, err
	}
	notAfter := notBefore.AddDate(1, 0, 0)
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gavel test root CA"},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	root, _ := x509.ParseCertificate(rootDER)
	oid, err := parseOID(EKU)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "gavel test signer"},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{oid},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, leafKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	did, err := didx509.ForChain([]*x509.Certificate{leaf, root}, didx509.EKU(EKU))
	if err != nil {
		return nil, err
	}
	return &Issuer{RootKey: rootKey, Root: root, LeafKey: leafKey, Leaf: leaf, DID: did}, nil
}

// Sign makes a signed statement about subject.
func (i *Issuer) Sign(subject, contentType string, payload []byte, iat time.Time, opts ...cose.SignOption) ([]byte, error) {
	return cose.SignStatement(i.LeafKey, i.Chain(), i.DID, subject, contentType, payload, iat, opts...)
}

// ChainPEM is the chain as PEM, leaf first.
func (i *Issuer) ChainPEM() []byte {
	var out []byte
	for _, c := range i.Chain() {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// LeafKeyPEM is the leaf key as PKCS#8 PEM.
func (i *Issuer) LeafKeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(i.LeafKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	var n int
	for _, r := range s + "." {
		if r == '.' {
			oid = append(oid, n)
			n = 0
			continue
		}
		if r < '0' || r > '9' {
			return nil, fmt.Errorf("issuer: bad OID %q", s)
		}
		n = n*10 + int(r-'0')
	}
	return oid, nil
}

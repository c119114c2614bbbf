// Package issuer owns a ready-to-sign did:x509 issuer for demos, tests and
// benchmarks: a development chain (didx509/devca) whose leaf key is of a
// chosen algorithm, the DID that pins it, and statement signing with it.
// Real issuers bring their own chains; this one lets gavel exercise the
// real verification path without any outside material.
package issuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/didx509/devca"
)

// Issuer is a development chain and its DID.
type Issuer struct {
	dev     *devca.Chain
	LeafKey crypto.Signer
	DID     string
}

// New makes an issuer whose leaf key is of the given algorithm: "ES256",
// "ES384", "ES512", "PS256", "PS384", "PS512" (RSA-2048) or "EdDSA". Its
// certificates are valid from an hour before notBefore for a year.
func New(alg string, notBefore time.Time) (*Issuer, error) {
	var key crypto.Signer
	var err error
	switch alg {
	case "ES256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "PS256", "PS384", "PS512":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "EdDSA":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("issuer: unknown algorithm %q", alg)
	}
	if err != nil {
		return nil, err
	}
	chain, err := devca.New(devca.Options{Now: notBefore.Add(time.Hour), LeafKey: key})
	if err != nil {
		return nil, err
	}
	return &Issuer{dev: chain, LeafKey: chain.LeafKey, DID: chain.Issuer()}, nil
}

// Chain is the x5chain, leaf first.
func (i *Issuer) Chain() []*x509.Certificate { return i.dev.Certs }

// ChainPEM is the chain as PEM, leaf first.
func (i *Issuer) ChainPEM() []byte { return i.dev.CertsPEM() }

// LeafKeyPEM is the leaf key as PKCS#8 PEM.
func (i *Issuer) LeafKeyPEM() ([]byte, error) { return i.dev.LeafKeyPEM() }

// Sign makes a signed statement about subject.
func (i *Issuer) Sign(subject, contentType string, payload []byte, iat time.Time, opts ...cose.SignOption) ([]byte, error) {
	return cose.SignStatement(i.LeafKey, i.dev.Certs, i.DID, subject, contentType, payload, iat, opts...)
}

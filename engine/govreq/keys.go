package govreq

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"time"

	"github.com/gavelhq/gavel/engine"
)

// MemberCertValidity is how long a certificate from Keygen is valid, as
// CCF's keygenerator.sh (openssl req -x509 -days 365).
const MemberCertValidity = 365 * 24 * time.Hour

// Keygen makes a member identity: a fresh key for alg ("ES256", "ES384" or
// "EdDSA") and a self-signed certificate with CN=name. The key is PKCS#8
// PEM ("PRIVATE KEY"), which CCF's tools also read.
func Keygen(alg string, name string) (certPEM, keyPEM []byte, err error) {
	a, err := ParseAlgorithm(alg)
	if err != nil {
		return nil, nil, err
	}
	if name == "" {
		return nil, nil, engine.Errorf(engine.KindInvalid, "InvalidName", "a member certificate needs a name")
	}
	var key crypto.Signer
	switch a {
	case ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ES384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case EdDSA:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		return nil, nil, engine.Wrap(engine.KindInternal, "KeygenFailed", err, "key generation failed")
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, engine.Wrap(engine.KindInternal, "KeygenFailed", err, "serial number generation failed")
	}
	now := time.Now().UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now,
		NotAfter:              now.Add(MemberCertValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, engine.Wrap(engine.KindInternal, "KeygenFailed", err, "certificate creation failed")
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, engine.Wrap(engine.KindInternal, "KeygenFailed", err, "key encoding failed")
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}

// Member is a member's signing identity, loaded by LoadMember.
type Member struct {
	ID   string // MemberID(Cert)
	Alg  Algorithm
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Sign signs a governance request as this member (see Sign).
func (m *Member) Sign(typ MsgType, proposalID string, createdAt time.Time, payload []byte) ([]byte, error) {
	return Sign(m.Key, m.Cert, typ, proposalID, createdAt, payload)
}

// LoadMember reads a member's certificate and private key (PKCS#8 or SEC1
// EC PEM, see ParsePrivateKeyPEM) and checks that they belong together and
// that the key is one gavel accepts.
func LoadMember(certPEM, keyPEM []byte) (*Member, error) {
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, err
	}
	alg, err := AlgorithmForKey(cert.PublicKey)
	if err != nil {
		return nil, err
	}
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, engine.Errorf(engine.KindInvalid, "InvalidKey", "the private key is not the certificate's key")
	}
	return &Member{ID: MemberID(cert), Alg: alg, Cert: cert, Key: key}, nil
}

// ParseCertificatePEM reads the first CERTIFICATE block of a PEM file.
func ParseCertificatePEM(certPEM []byte) (*x509.Certificate, error) {
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil, engine.Errorf(engine.KindInvalid, "InvalidCertificate", "no PEM CERTIFICATE block")
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, engine.Wrap(engine.KindInvalid, "InvalidCertificate", err, "certificate does not parse")
		}
		return cert, nil
	}
}

// ParsePrivateKeyPEM reads a private key from PEM: PKCS#8 ("PRIVATE KEY")
// or SEC1 ("EC PRIVATE KEY", as openssl ecparam -genkey writes it, whose
// leading "EC PARAMETERS" block is skipped). The key must be ECDSA P-256,
// P-384 or Ed25519. Encrypted keys are refused.
func ParsePrivateKeyPEM(keyPEM []byte) (crypto.Signer, error) {
	for rest := keyPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil, engine.Errorf(engine.KindInvalid, "InvalidKey", "no PEM PRIVATE KEY or EC PRIVATE KEY block")
		}
		var key any
		var err error
		switch b.Type {
		case "EC PARAMETERS":
			continue
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			return nil, engine.Errorf(engine.KindInvalid, "InvalidKey", "PEM block %q is not an unencrypted private key", b.Type)
		}
		if err != nil {
			return nil, engine.Wrap(engine.KindInvalid, "InvalidKey", err, "%s does not parse", b.Type)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, engine.Errorf(engine.KindInvalid, "InvalidKey", "key of type %T cannot sign", key)
		}
		if _, err := AlgorithmForKey(signer.Public()); err != nil {
			return nil, err
		}
		return signer, nil
	}
}

// ParsePublicKeyPEM reads a public key from PEM: PKIX ("PUBLIC KEY") or the
// key of a CERTIFICATE. The key must be ECDSA P-256, P-384 or Ed25519.
func ParsePublicKeyPEM(pubPEM []byte) (crypto.PublicKey, error) {
	b, _ := pem.Decode(pubPEM)
	if b == nil {
		return nil, engine.Errorf(engine.KindInvalid, "InvalidKey", "no PEM block")
	}
	var pub crypto.PublicKey
	switch b.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, engine.Wrap(engine.KindInvalid, "InvalidKey", err, "PUBLIC KEY does not parse")
		}
		pub = k
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, engine.Wrap(engine.KindInvalid, "InvalidCertificate", err, "certificate does not parse")
		}
		pub = cert.PublicKey
	default:
		return nil, engine.Errorf(engine.KindInvalid, "InvalidKey", "PEM block %q is not a public key", b.Type)
	}
	if _, err := AlgorithmForKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

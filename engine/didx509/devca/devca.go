package devca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gavelhq/gavel/engine/didx509"
)

// DefaultEKU is the extended key usage the leaf gets unless told otherwise:
// id-kp-codeSigning.
const DefaultEKU = "1.3.6.1.5.5.7.3.3"

// Options shape a chain; the zero value gives root → ECDSA P-256 leaf with
// DefaultEKU, valid from an hour before time.Now() for a year.
type Options struct {
	// Now anchors validity: [Now-1h, Now+Validity]. Zero means time.Now().
	Now time.Time
	// Validity defaults to 365 days.
	Validity time.Duration
	// LeafKey is the signing key; a fresh ECDSA P-256 key when nil.
	LeafKey crypto.Signer
	// CAKey signs the CA certificates; a fresh ECDSA P-256 key when nil.
	CAKey crypto.Signer
	// LeafSubject defaults to CN=gavel dev signer, O=gavel.
	LeafSubject pkix.Name
	// EKU is the leaf's extended key usage (a dotted OID), DefaultEKU if "".
	EKU string
	// Intermediate puts an intermediate CA between the root and the leaf.
	Intermediate bool
	// Subject alternative names of the leaf.
	EmailAddresses []string
	DNSNames       []string
	URIs           []string
}

// Chain is a generated chain.
type Chain struct {
	Certs   []*x509.Certificate // leaf first, root last
	LeafKey crypto.Signer
	CAKey   crypto.Signer
	eku     string
}

// Leaf is the signing certificate.
func (c *Chain) Leaf() *x509.Certificate { return c.Certs[0] }

// Root is the self-signed root.
func (c *Chain) Root() *x509.Certificate { return c.Certs[len(c.Certs)-1] }

// Issuer is the did:x509 pinning the root by SHA-256 with the leaf's eku:
// did:x509:0:sha256:<root>::eku:<oid>.
func (c *Chain) Issuer() string {
	did, err := didx509.ForChain(c.Certs, didx509.EKU(c.eku))
	if err != nil {
		panic("devca: issuer of a generated chain does not build: " + err.Error())
	}
	return did
}

// CertsPEM is the chain as PEM CERTIFICATE blocks, leaf first.
func (c *Chain) CertsPEM() []byte {
	var b bytes.Buffer
	for _, cert := range c.Certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	}
	return b.Bytes()
}

// LeafKeyPEM is the leaf key as a PEM PKCS #8 PRIVATE KEY block.
func (c *Chain) LeafKeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(c.LeafKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// New makes a chain.
func New(o Options) (*Chain, error) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	validity := o.Validity
	if validity == 0 {
		validity = 365 * 24 * time.Hour
	}
	notBefore, notAfter := now.Add(-time.Hour).UTC(), now.Add(validity).UTC()
	eku := o.EKU
	if eku == "" {
		eku = DefaultEKU
	}
	ekuOID, err := parseOID(eku)
	if err != nil {
		return nil, err
	}
	caKey, err := keyOrNew(o.CAKey)
	if err != nil {
		return nil, err
	}
	leafKey, err := keyOrNew(o.LeafKey)
	if err != nil {
		return nil, err
	}
	root, err := issue(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "gavel dev root CA", Organization: []string{"gavel"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	parent, parentKey := root, caKey
	certs := []*x509.Certificate{root}
	if o.Intermediate {
		inter, err := issue(&x509.Certificate{
			Subject:               pkix.Name{CommonName: "gavel dev intermediate CA", Organization: []string{"gavel"}},
			NotBefore:             notBefore,
			NotAfter:              notAfter,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLenZero:        true,
		}, root, caKey.Public(), caKey)
		if err != nil {
			return nil, err
		}
		parent = inter
		certs = append([]*x509.Certificate{inter}, certs...)
	}
	subject := o.LeafSubject
	if len(subject.Names) == 0 && subject.CommonName == "" && len(subject.Organization) == 0 {
		subject = pkix.Name{CommonName: "gavel dev signer", Organization: []string{"gavel"}}
	}
	var uris []*url.URL
	for _, u := range o.URIs {
		parsed, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("devca: SAN URI %q: %w", u, err)
		}
		uris = append(uris, parsed)
	}
	leaf, err := issue(&x509.Certificate{
		Subject:            subject,
		NotBefore:          notBefore,
		NotAfter:           notAfter,
		KeyUsage:           x509.KeyUsageDigitalSignature,
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{ekuOID},
		EmailAddresses:     o.EmailAddresses,
		DNSNames:           o.DNSNames,
		URIs:               uris,
	}, parent, leafKey.Public(), parentKey)
	if err != nil {
		return nil, err
	}
	return &Chain{Certs: append([]*x509.Certificate{leaf}, certs...), LeafKey: leafKey, CAKey: caKey, eku: eku}, nil
}

func keyOrNew(k crypto.Signer) (crypto.Signer, error) {
	if k != nil {
		return k, nil
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// issue signs template with parentKey; a nil parent makes it self-signed.
func issue(template, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	template.SerialNumber = serial.Add(serial, big.NewInt(1))
	if parent == nil {
		parent = template
	}
	der, err := x509.CreateCertificate(rand.Reader, template, parent, pub, parentKey)
	if err != nil {
		return nil, fmt.Errorf("devca: %w", err)
	}
	return x509.ParseCertificate(der)
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for _, arc := range strings.Split(s, ".") {
		n, err := strconv.Atoi(arc)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("devca: %q is not a dotted OID", s)
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, fmt.Errorf("devca: %q is not a dotted OID", s)
	}
	return oid, nil
}

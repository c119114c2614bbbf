package devsnp

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
)

// The shape of AMD's Key Distribution Service certificates (AMD's "VCEK
// Certificate and KDS Interface Specification", 57230), as go-sev-guest's
// verifier checks it: X.509 v3, RSASSA-PSS with SHA-384 throughout, AMD's
// Santa Clara names, one CRL distribution point on the ARK and ASK, and
// the VCEK's extensions under AMD's arc 1.3.6.1.4.1.3704.1.
const (
	rootYears = 25 // ARK and ASK
	vcekYears = 7
)

// productLine is ProductName without its stepping ("Milan").
var productLine = kds.ProductLineOfProductName(ProductName)

// amdName is the distinguished name every AMD certificate carries.
func amdName(commonName, serial string) pkix.Name {
	return pkix.Name{
		Country:            []string{"US"},
		Province:           []string{"CA"},
		Locality:           []string{"Santa Clara"},
		Organization:       []string{"Advanced Micro Devices"},
		OrganizationalUnit: []string{"Engineering"},
		CommonName:         commonName,
		SerialNumber:       serial,
	}
}

// vcekExtensions are the VCEK's KDS extensions: structure version 0, the
// product name with its stepping, each security patch level of tcb, and
// the chip's hardware id (kds.CertificateExtensions reads them back).
func vcekExtensions(tcb kds.TCBParts, hwid [abi.ChipIDSize]byte) ([]pkix.Extension, error) {
	var exts []pkix.Extension
	add := func(id asn1.ObjectIdentifier, v any, params string) error {
		b, err := asn1.MarshalWithParams(v, params)
		if err != nil {
			return fmt.Errorf("devsnp: extension %v: %w", id, err)
		}
		exts = append(exts, pkix.Extension{Id: id, Value: b})
		return nil
	}
	if err := add(kds.OidStructVersion, 0, ""); err != nil {
		return nil, err
	}
	if err := add(kds.OidProductName1, ProductName, "ia5"); err != nil {
		return nil, err
	}
	for _, spl := range []struct {
		id asn1.ObjectIdentifier
		v  uint8
	}{
		{kds.OidBlSpl, tcb.BlSpl}, {kds.OidTeeSpl, tcb.TeeSpl}, {kds.OidSnpSpl, tcb.SnpSpl},
		{kds.OidSpl4, tcb.Spl4}, {kds.OidSpl5, tcb.Spl5}, {kds.OidSpl6, tcb.Spl6}, {kds.OidSpl7, tcb.Spl7},
		{kds.OidUcodeSpl, tcb.UcodeSpl},
	} {
		if err := add(spl.id, int(spl.v), ""); err != nil {
			return nil, err
		}
	}
	if err := add(kds.OidHwid, hwid[:], ""); err != nil {
		return nil, err
	}
	return exts, nil
}

// certify signs tmpl for pub with the issuer's key and parses the result.
func certify(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("devsnp: certify %s: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// randomSerial is a positive 64-bit serial number.
func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
}

// makeChain certifies keys as AMD certifies a chip's keys: the ARK
// self-signed, the ASK by the ARK (both CAs for 25 years from created), and
// the VCEK by the ASK until created plus 7 years, endorsing tcb for the
// chip hwid. As AMD's VCEKs do, the VCEK has no CRL link and no key usage.
func makeChain(keys Keys, created time.Time, tcb kds.TCBParts, hwid [abi.ChipIDSize]byte) (ark, ask, vcek *x509.Certificate, err error) {
	crl := kds.CrlLinkByKey(productLine, abi.VcekReportSigner)
	root := func(cn string, serial *big.Int, usage x509.KeyUsage) *x509.Certificate {
		return &x509.Certificate{
			Version:               3,
			SerialNumber:          serial,
			Subject:               amdName(cn, fmt.Sprintf("%x", serial)),
			NotBefore:             created,
			NotAfter:              created.Add(rootYears * 365 * 24 * time.Hour),
			SignatureAlgorithm:    x509.SHA384WithRSAPSS,
			KeyUsage:              usage,
			CRLDistributionPoints: []string{crl},
			IsCA:                  true,
			BasicConstraintsValid: true,
		}
	}
	arkSerial, err := randomSerial()
	if err != nil {
		return nil, nil, nil, err
	}
	askSerial, err := randomSerial()
	if err != nil {
		return nil, nil, nil, err
	}
	arkTmpl := root("ARK-"+productLine, arkSerial, x509.KeyUsageCertSign|x509.KeyUsageCRLSign)
	if ark, err = certify(arkTmpl, arkTmpl, keys.ARK.Public(), keys.ARK); err != nil {
		return nil, nil, nil, err
	}
	if ask, err = certify(root("SEV-"+productLine, askSerial, x509.KeyUsageCertSign), ark, keys.ASK.Public(), keys.ARK); err != nil {
		return nil, nil, nil, err
	}
	exts, err := vcekExtensions(tcb, hwid)
	if err != nil {
		return nil, nil, nil, err
	}
	vcekSerial, err := randomSerial()
	if err != nil {
		return nil, nil, nil, err
	}
	vcekTmpl := &x509.Certificate{
		Version:            3,
		SerialNumber:       vcekSerial,
		Subject:            amdName("SEV-"+abi.VcekReportSigner.String(), fmt.Sprintf("%x", vcekSerial)),
		NotAfter:           created.Add(vcekYears * 365 * 24 * time.Hour),
		SignatureAlgorithm: x509.SHA384WithRSAPSS,
		ExtraExtensions:    exts,
	}
	if vcek, err = certify(vcekTmpl, ask, keys.VCEK.Public(), keys.ASK); err != nil {
		return nil, nil, nil, err
	}
	return ark, ask, vcek, nil
}

package didx509

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"slices"
	"strings"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/internal/bounded"
)

var (
	oidKeyUsage            = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidSubjectAltName      = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidBasicConstraints    = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidNameConstraints     = asn1.ObjectIdentifier{2, 5, 29, 30}
	oidCertificatePolicies = asn1.ObjectIdentifier{2, 5, 29, 32}
	oidPolicyMappings      = asn1.ObjectIdentifier{2, 5, 29, 33}
	oidPolicyConstraints   = asn1.ObjectIdentifier{2, 5, 29, 36}
	oidExtKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidInhibitAnyPolicy    = asn1.ObjectIdentifier{2, 5, 29, 54}
	oidFulcioIssuer        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
)

// criticalAllowed are the only extensions the method lets a chain mark
// critical.
var criticalAllowed = []asn1.ObjectIdentifier{
	oidKeyUsage, oidSubjectAltName, oidBasicConstraints, oidNameConstraints,
	oidCertificatePolicies, oidPolicyMappings, oidPolicyConstraints,
	oidExtKeyUsage, oidInhibitAnyPolicy,
}

// Resolve resolves did against chain (leaf first, trust anchor last) at time
// at and returns the leaf's public key:
//   - the chain has at least two certificates, each signed by the next, all
//     valid at at, CA constraints respected, no critical extension other than
//     those the method allows;
//   - the DID's CA fingerprint is that of a certificate other than the leaf;
//   - every predicate matches the leaf;
//   - the leaf may sign (key usage absent or with digitalSignature).
//
// Errors are *engine.Error, KindInvalid, code InvalidIssuer, wrapping ErrSyntax,
// ErrChain, ErrFingerprint or ErrPredicate.
func Resolve(did string, chain []*x509.Certificate, at time.Time) (crypto.PublicKey, error) {
	// Issuers send many statements with one chain: a resolution that held is
	// remembered with the window in which every certificate is valid, the
	// only part of the check that depends on time.
	if slices.Contains(chain, nil) {
		return resolve(did, chain, at)
	}
	key := resolutionKey(did, chain)
	if r, ok := resolved.Get(key); ok && !at.Before(r.notBefore) && !at.After(r.notAfter) {
		return r.leafKey, nil
	}
	leafKey, err := resolve(did, chain, at)
	if err != nil {
		return nil, err
	}
	r := resolution{leafKey: leafKey, notBefore: chain[0].NotBefore, notAfter: chain[0].NotAfter}
	for _, c := range chain[1:] {
		if c.NotBefore.After(r.notBefore) {
			r.notBefore = c.NotBefore
		}
		if c.NotAfter.Before(r.notAfter) {
			r.notAfter = c.NotAfter
		}
	}
	resolved.Put(key, r)
	return leafKey, nil
}

type resolution struct {
	leafKey             crypto.PublicKey
	notBefore, notAfter time.Time
}

// resolved caches successful resolutions by DID and chain bytes.
var resolved = bounded.New[[32]byte, resolution](4096)

func resolutionKey(did string, chain []*x509.Certificate) [32]byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(did)))
	h.Write(n[:])
	h.Write([]byte(did))
	for _, c := range chain {
		binary.BigEndian.PutUint64(n[:], uint64(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func resolve(did string, chain []*x509.Certificate, at time.Time) (crypto.PublicKey, error) {
	d, err := Parse(did)
	if err != nil {
		return nil, err
	}
	if err := verifyChain(chain, at); err != nil {
		return nil, err
	}
	if err := matchFingerprint(d, chain[1:]); err != nil {
		return nil, err
	}
	leaf := chain[0]
	for _, p := range d.Predicates {
		if err := matchPredicate(p, leaf); err != nil {
			return nil, err
		}
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, predicateError("leaf key usage does not allow digital signatures")
	}
	return leaf.PublicKey, nil
}

func verifyChain(chain []*x509.Certificate, at time.Time) error {
	if len(chain) < 2 {
		return chainError("chain has %d certificate(s), did:x509 needs at least two", len(chain))
	}
	for i, c := range chain {
		if c == nil {
			return chainError("certificate %d is missing", i)
		}
		for _, ext := range c.Extensions {
			if ext.Critical && !oidIn(ext.Id, criticalAllowed) {
				return chainError("certificate %d has critical extension %s, which did:x509 does not allow", i, ext.Id)
			}
		}
		if i > 0 && c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
			return chainError("certificate %d issues certificate %d but its key usage lacks keyCertSign", i, i-1)
		}
	}
	anchor := chain[len(chain)-1]
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	intermediates := x509.NewCertPool()
	for _, c := range chain[1 : len(chain)-1] {
		intermediates.AddCert(c)
	}
	built, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return chainError("chain does not validate at %s: %v", at.UTC().Format(time.RFC3339), err)
	}
	// The path must be the chain as given, not another one built from it.
	for _, path := range built {
		if samePath(path, chain) {
			return nil
		}
	}
	return chainError("the certificates do not form the chain in the order given (leaf first, each signed by the next)")
}

func samePath(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

func matchFingerprint(d *DID, cas []*x509.Certificate) error {
	for _, c := range cas {
		if bytes.Equal(Fingerprint(c, d.FingerprintAlg), d.Fingerprint) {
			return nil
		}
	}
	e := engine.Errorf(engine.KindInvalid, CodeInvalidIssuer, "no CA certificate in the chain has %s fingerprint %s", d.FingerprintAlg, encodeFingerprint(d.Fingerprint))
	e.Err = ErrFingerprint
	return e
}

func matchPredicate(p Predicate, leaf *x509.Certificate) error {
	switch p.Name {
	case PredicateSubject:
		return matchSubject(p.Value, leaf)
	case PredicateSAN:
		return matchSAN(p.Value, leaf)
	case PredicateEKU:
		return matchEKU(p.Value, leaf)
	case PredicateFulcioIssuer:
		return matchFulcioIssuer(p.Value, leaf)
	}
	return syntaxError("unknown predicate %q", truncate(p.Name))
}

func matchSubject(value string, leaf *x509.Certificate) error {
	subject := map[string]string{}
	for _, atv := range leaf.Subject.Names {
		key := atv.Type.String()
		if label, ok := subjectLabels[key]; ok {
			key = label
		}
		if _, dup := subject[key]; dup {
			return predicateError("leaf subject repeats attribute %s, which did:x509 cannot match", key)
		}
		s, ok := atv.Value.(string)
		if !ok {
			return predicateError("leaf subject attribute %s is not a string", key)
		}
		subject[key] = s
	}
	items := strings.Split(value, ":")
	for i := 0; i+1 < len(items); i += 2 {
		key, want := items[i], percentDecode(items[i+1])
		got, ok := subject[key]
		if !ok {
			return predicateError("leaf subject has no %s", key)
		}
		if got != want {
			return predicateError("leaf subject %s is %q, the DID wants %q", key, got, want)
		}
	}
	return nil
}

func matchSAN(value string, leaf *x509.Certificate) error {
	items := strings.Split(value, ":")
	kind, want := items[0], percentDecode(items[1])
	sans, err := subjectAltNames(leaf)
	if err != nil {
		return err
	}
	for _, s := range sans {
		if s.kind == kind && s.value == want {
			return nil
		}
	}
	return predicateError("leaf has no %s SAN %q", kind, want)
}

func matchEKU(oid string, leaf *x509.Certificate) error {
	ext := findExtension(leaf, oidExtKeyUsage)
	if ext == nil {
		return predicateError("leaf has no extended key usage extension")
	}
	var oids []asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(ext.Value, &oids); err != nil || len(rest) != 0 {
		return predicateError("leaf extended key usage extension is malformed")
	}
	for _, o := range oids {
		if o.String() == oid {
			return nil
		}
	}
	return predicateError("leaf extended key usage does not include %s", oid)
}

func matchFulcioIssuer(value string, leaf *x509.Certificate) error {
	ext := findExtension(leaf, oidFulcioIssuer)
	if ext == nil {
		return predicateError("leaf has no Fulcio issuer extension")
	}
	want := "https://" + percentDecode(value)
	if string(ext.Value) != want {
		return predicateError("leaf Fulcio issuer is %q, the DID wants %q", truncate(string(ext.Value)), want)
	}
	return nil
}

type san struct{ kind, value string }

// subjectAltNames reads the email, dns and uri names of the SAN extension
// verbatim (crypto/x509 normalises URIs, the method compares strings).
func subjectAltNames(c *x509.Certificate) ([]san, error) {
	ext := findExtension(c, oidSubjectAltName)
	if ext == nil {
		return nil, nil
	}
	var names []asn1.RawValue
	if rest, err := asn1.Unmarshal(ext.Value, &names); err != nil || len(rest) != 0 {
		return nil, predicateError("leaf subject alternative name extension is malformed")
	}
	var out []san
	for _, n := range names {
		if n.Class != asn1.ClassContextSpecific || n.IsCompound {
			continue
		}
		switch n.Tag {
		case 1:
			out = append(out, san{SANEmail, string(n.Bytes)})
		case 2:
			out = append(out, san{SANDNS, string(n.Bytes)})
		case 6:
			out = append(out, san{SANURI, string(n.Bytes)})
		}
	}
	return out, nil
}

func findExtension(c *x509.Certificate, oid asn1.ObjectIdentifier) *pkix.Extension {
	for i := range c.Extensions {
		if c.Extensions[i].Id.Equal(oid) {
			return &c.Extensions[i]
		}
	}
	return nil
}

func oidIn(oid asn1.ObjectIdentifier, set []asn1.ObjectIdentifier) bool {
	for _, o := range set {
		if o.Equal(oid) {
			return true
		}
	}
	return false
}

func chainError(format string, args ...any) *engine.Error {
	e := engine.Errorf(engine.KindInvalid, CodeInvalidIssuer, format, args...)
	e.Err = ErrChain
	return e
}

func predicateError(format string, args ...any) *engine.Error {
	e := engine.Errorf(engine.KindInvalid, CodeInvalidIssuer, format, args...)
	e.Err = ErrPredicate
	return e
}

package didx509

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"strings"

	"github.com/gavelhq/gavel/engine"
)

// Prefix starts every version 0 did:x509 identifier.
const Prefix = "did:x509:0:"

// Predicate names defined by the did:x509 method.
const (
	PredicateSubject      = "subject"
	PredicateSAN          = "san"
	PredicateEKU          = "eku"
	PredicateFulcioIssuer = "fulcio-issuer"
)

// SAN types a san predicate may name.
const (
	SANEmail = "email"
	SANDNS   = "dns"
	SANURI   = "uri"
)

// DID is a parsed did:x509 identifier.
type DID struct {
	// FingerprintAlg is "sha256", "sha384" or "sha512".
	FingerprintAlg string
	// Fingerprint is the digest of the DER of a CA certificate in the chain.
	Fingerprint []byte
	// Predicates are matched against the leaf certificate, all of them.
	Predicates []Predicate
}

// Predicate is one "::name:value" part of a did:x509. Value is kept exactly as
// written in the DID, percent-encoding included.
type Predicate struct {
	Name  string
	Value string
}

func (p Predicate) String() string { return p.Name + ":" + p.Value }

// String renders the DID; for a DID returned by Parse it is the parsed text.
func (d *DID) String() string {
	var b strings.Builder
	b.WriteString(Prefix)
	b.WriteString(d.FingerprintAlg)
	b.WriteByte(':')
	b.WriteString(encodeFingerprint(d.Fingerprint))
	for _, p := range d.Predicates {
		b.WriteString("::")
		b.WriteString(p.String())
	}
	return b.String()
}

// Parse checks a did:x509 against the method's ABNF and each predicate's own
// grammar. It does not look at any certificate.
func Parse(did string) (*DID, error) {
	rest, ok := strings.CutPrefix(did, "did:x509:")
	if !ok {
		return nil, syntaxError("%q does not start with did:x509:", truncate(did))
	}
	version, rest, ok := strings.Cut(rest, ":")
	if !ok || version == "" || strings.Trim(version, "0123456789") != "" {
		return nil, syntaxError("missing method version")
	}
	if version != "0" {
		return nil, syntaxError("method version %q is not supported (only 0)", truncate(version))
	}
	parts := strings.Split(rest, "::")
	if len(parts) < 2 {
		return nil, syntaxError("no predicate: at least one ::name:value is required")
	}
	alg, fp, ok := strings.Cut(parts[0], ":")
	if !ok || strings.Contains(fp, ":") {
		return nil, syntaxError("CA fingerprint must be <alg>:<base64url>")
	}
	size, ok := fingerprintSizes[alg]
	if !ok {
		return nil, syntaxError("fingerprint algorithm %q is not sha256, sha384 or sha512", truncate(alg))
	}
	if fp == "" || !isBase64URL(fp) {
		return nil, syntaxError("CA fingerprint is not base64url")
	}
	digest, err := base64.RawURLEncoding.Strict().DecodeString(fp)
	if err != nil || len(digest) != size {
		return nil, syntaxError("CA fingerprint is not a base64url %s digest", alg)
	}
	d := &DID{FingerprintAlg: alg, Fingerprint: digest}
	for _, raw := range parts[1:] {
		name, value, ok := strings.Cut(raw, ":")
		if !ok {
			return nil, syntaxError("predicate %q has no value", truncate(raw))
		}
		p := Predicate{Name: name, Value: value}
		if err := checkPredicate(p); err != nil {
			return nil, err
		}
		d.Predicates = append(d.Predicates, p)
	}
	return d, nil
}

var fingerprintSizes = map[string]int{"sha256": sha256.Size, "sha384": sha512.Size384, "sha512": sha512.Size}

// Fingerprint returns the digest of cert's DER under alg ("sha256", "sha384"
// or "sha512"), or nil for another alg.
func Fingerprint(cert *x509.Certificate, alg string) []byte {
	switch alg {
	case "sha256":
		h := sha256.Sum256(cert.Raw)
		return h[:]
	case "sha384":
		h := sha512.Sum384(cert.Raw)
		return h[:]
	case "sha512":
		h := sha512.Sum512(cert.Raw)
		return h[:]
	}
	return nil
}

// subjectLabels are the RFC 4514 labels the method uses for name attributes;
// any other attribute is keyed by its dotted OID.
var subjectLabels = map[string]string{
	"2.5.4.3":  "CN",
	"2.5.4.7":  "L",
	"2.5.4.8":  "ST",
	"2.5.4.10": "O",
	"2.5.4.11": "OU",
	"2.5.4.6":  "C",
	"2.5.4.9":  "STREET",
}

func isSubjectLabel(s string) bool {
	for _, l := range subjectLabels {
		if s == l {
			return true
		}
	}
	return false
}

// checkPredicate enforces predicate-value = *(1*idchar ":") 1*idchar and the
// named predicate's own grammar.
func checkPredicate(p Predicate) error {
	segments := strings.Split(p.Value, ":")
	for _, s := range segments {
		if !isIDChars(s) {
			return syntaxError("predicate %s has an empty or badly encoded part", p.Name)
		}
	}
	switch p.Name {
	case PredicateSubject:
		if len(segments)%2 != 0 {
			return syntaxError("subject predicate needs key:value pairs")
		}
		seen := map[string]bool{}
		for i := 0; i < len(segments); i += 2 {
			k := segments[i]
			if !isSubjectLabel(k) && !isOID(k) {
				return syntaxError("subject key %q is neither a known label nor an OID", truncate(k))
			}
			if seen[k] {
				return syntaxError("subject key %q repeats", k)
			}
			seen[k] = true
		}
	case PredicateSAN:
		if len(segments) != 2 {
			return syntaxError("san predicate needs exactly <type>:<value>")
		}
		switch segments[0] {
		case SANEmail, SANDNS, SANURI:
		default:
			return syntaxError("san type %q is not email, dns or uri", truncate(segments[0]))
		}
	case PredicateEKU:
		if len(segments) != 1 || !isOID(segments[0]) {
			return syntaxError("eku predicate needs one OID")
		}
	case PredicateFulcioIssuer:
		if len(segments) != 1 {
			return syntaxError("fulcio-issuer value must be percent-encoded (no ':')")
		}
	default:
		return syntaxError("unknown predicate %q", truncate(p.Name))
	}
	return nil
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// isIDChars reports whether s is 1*idchar: ALPHA / DIGIT / "." / "-" / "_" /
// pct-encoded.
func isIDChars(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlnum(c) || c == '.' || c == '-' || c == '_':
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			i += 2
		default:
			return false
		}
	}
	return true
}

// isOID reports whether s is 1*DIGIT *("." 1*DIGIT).
func isOID(s string) bool {
	for _, arc := range strings.Split(s, ".") {
		if arc == "" || strings.Trim(arc, "0123456789") != "" {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// percentDecode decodes a value that isIDChars accepted.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

// PercentEncode encodes every byte outside ALPHA / DIGIT / "-" / "." / "_", as
// the method requires for predicate values.
func PercentEncode(s string) string {
	const hexdigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) || c == '-' || c == '.' || c == '_' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdigits[c>>4])
		b.WriteByte(hexdigits[c&15])
	}
	return b.String()
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func syntaxError(format string, args ...any) *engine.Error {
	e := engine.Errorf(engine.KindInvalid, CodeInvalidIssuer, format, args...)
	e.Err = ErrSyntax
	return e
}

package didx509

import (
	"crypto/x509"
	"encoding/base64"
	"strings"
)

// Subject builds a subject predicate from key, value pairs (keys are labels
// such as CN, O, C or dotted OIDs); values are percent-encoded here.
func Subject(keyValues ...string) Predicate {
	parts := make([]string, len(keyValues))
	for i, s := range keyValues {
		if i%2 == 1 {
			s = PercentEncode(s)
		}
		parts[i] = s
	}
	return Predicate{Name: PredicateSubject, Value: strings.Join(parts, ":")}
}

// SAN builds a san predicate; kind is SANEmail, SANDNS or SANURI.
func SAN(kind, value string) Predicate {
	return Predicate{Name: PredicateSAN, Value: kind + ":" + PercentEncode(value)}
}

// EKU builds an eku predicate for a dotted OID.
func EKU(oid string) Predicate { return Predicate{Name: PredicateEKU, Value: oid} }

// FulcioIssuer builds a fulcio-issuer predicate from the issuer URL.
func FulcioIssuer(issuer string) Predicate {
	return Predicate{Name: PredicateFulcioIssuer, Value: PercentEncode(strings.TrimPrefix(issuer, "https://"))}
}

// New builds the did:x509 that pins ca by its SHA-256 fingerprint and
// requires predicates of the leaf. The result is checked with Parse.
func New(ca *x509.Certificate, predicates ...Predicate) (string, error) {
	d := DID{FingerprintAlg: "sha256", Fingerprint: Fingerprint(ca, "sha256"), Predicates: predicates}
	s := d.String()
	if _, err := Parse(s); err != nil {
		return "", err
	}
	return s, nil
}

// ForChain builds the did:x509 that pins the last certificate of chain (the
// root) and requires predicates of the leaf, e.g.
// did:x509:0:sha256:<root fingerprint>::eku:<oid>.
func ForChain(chain []*x509.Certificate, predicates ...Predicate) (string, error) {
	if len(chain) < 2 {
		return "", chainError("chain has %d certificate(s), did:x509 needs at least two", len(chain))
	}
	return New(chain[len(chain)-1], predicates...)
}

// encodeFingerprint is the base64url form a DID carries.
func encodeFingerprint(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

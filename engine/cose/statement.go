package cose

import (
	"crypto/sha256"
	"crypto/x509"
	"strconv"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/internal/bounded"
)

// Header labels gavel reads (IANA "COSE Header Parameters", CWT claims).
const (
	LabelAlg                 int64 = 1
	LabelCrit                int64 = 2
	LabelContentType         int64 = 3
	LabelKID                 int64 = 4
	LabelCWTClaims           int64 = 15
	LabelX5Chain             int64 = 33
	LabelX5T                 int64 = 34
	LabelPayloadHashAlg      int64 = 258
	LabelPreimageContentType int64 = 259
	LabelPayloadLocation     int64 = 260
	LabelReceipts            int64 = 394

	ClaimIssuer   int64 = 1
	ClaimSubject  int64 = 2
	ClaimIssuedAt int64 = 6
)

// understood are the protected labels a crit header may name: gavel
// processes each of them.
var understood = map[any]bool{
	LabelAlg: true, LabelCrit: true, LabelContentType: true, LabelCWTClaims: true, LabelX5Chain: true,
	LabelPayloadHashAlg: true, LabelPreimageContentType: true, LabelPayloadLocation: true,
}

// hashSizes are the digest sizes of the payload-hash-alg values gavel knows;
// a hash envelope with one of these must carry a payload of that size.
var hashSizes = map[int64]int{-16: 32, -43: 48, -44: 64}

// Statement is a parsed (not yet verified) SCITT signed statement.
type Statement struct {
	Alg   Algorithm
	Chain []*x509.Certificate // x5chain, leaf first
	// Issuer and Subject are the CWT claims iss and sub.
	Issuer  string
	Subject string
	// IssuedAt is the CWT claim iat; the zero Time when absent.
	IssuedAt time.Time
	// ContentType is header 3; a CoAP content format number is given in
	// decimal; "" when absent.
	ContentType string
	// Payload is the signed payload; for a hash envelope it is the hash.
	Payload []byte
	// PayloadHashAlg (258), PreimageContentType (259) and PayloadLocation
	// (260) are the hash-envelope headers; zero values when absent.
	PayloadHashAlg      int64
	PreimageContentType string
	PayloadLocation     string
	// Claims is the whole CWT claims map, for claims such as "svn".
	Claims Header
	// ProtectedHeader is the decoded protected header.
	ProtectedHeader Header
	// Protected is the serialized protected header, as signed.
	Protected   []byte
	Unprotected Header
	Signature   []byte
	Raw         []byte
}

// IsHashEnvelope reports whether the payload is the hash of a preimage.
func (st *Statement) IsHashEnvelope() bool { return st.PayloadHashAlg != 0 }

// ParseStatement parses a signed statement: a tagged COSE_Sign1 whose
// protected header has alg (a supported one), x5chain (33: one certificate
// or an array, leaf first) and CWT claims (15) with text iss (1) and sub (2)
// and an optional integer iat (6, tag 1 allowed); the payload is attached.
// Other CWT claims, including text-keyed ones, are kept in Claims.
// Errors: InvalidStatement, UnsupportedAlgorithm.
func ParseStatement(raw []byte) (*Statement, error) {
	m, err := DecodeSign1(raw)
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeInvalidStatement, err, "not a COSE_Sign1 statement")
	}
	if m.Payload == nil {
		return nil, invalidStatement("payload is detached; a signed statement carries its payload")
	}
	phdr, err := m.ProtectedHeader()
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeInvalidStatement, err, "protected header")
	}
	st := &Statement{
		Payload: m.Payload, ProtectedHeader: phdr, Protected: m.Protected,
		Unprotected: m.Unprotected, Signature: m.Signature, Raw: raw,
	}
	if st.Alg, err = parseAlg(phdr); err != nil {
		return nil, err
	}
	if err := checkCrit(phdr); err != nil {
		return nil, err
	}
	if st.Chain, err = parseX5Chain(phdr); err != nil {
		return nil, err
	}
	if err := st.parseClaims(phdr); err != nil {
		return nil, err
	}
	if raw, ok := phdr.Get(LabelContentType); ok {
		if st.ContentType, err = contentType(raw); err != nil {
			return nil, invalidStatement("content type (3): %v", err)
		}
	}
	if err := st.parseHashEnvelope(phdr); err != nil {
		return nil, err
	}
	return st, nil
}

func parseAlg(phdr Header) (Algorithm, error) {
	raw, ok := phdr.Get(LabelAlg)
	if !ok {
		return 0, invalidStatement("protected header has no alg (1)")
	}
	if majorType(raw) == majorText {
		name, _ := DecodeText(raw)
		return 0, engine.Errorf(engine.KindInvalid, CodeUnsupportedAlgorithm, "algorithm %q is not supported", truncate(name))
	}
	v, err := DecodeInt(raw)
	if err != nil {
		return 0, invalidStatement("alg (1): %v", err)
	}
	alg := Algorithm(v)
	if !alg.Supported() {
		return 0, engine.Errorf(engine.KindInvalid, CodeUnsupportedAlgorithm, "algorithm %s is not supported (ES256, ES384, ES512, PS256, PS384, PS512, EdDSA are)", alg)
	}
	return alg, nil
}

// checkCrit refuses a statement whose crit header names a label gavel does
// not process (RFC 9052 §3.1).
func checkCrit(phdr Header) error {
	raw, ok := phdr.Get(LabelCrit)
	if !ok {
		return nil
	}
	var labels []cbor.RawMessage
	if majorType(raw) != majorArray || engine.CBORDecode.Unmarshal(raw, &labels) != nil || len(labels) == 0 {
		return invalidStatement("crit (2) must be a non-empty array of labels")
	}
	for _, l := range labels {
		var label any
		if v, err := DecodeInt(l); err == nil {
			label = v
		} else if s, err := DecodeText(l); err == nil {
			label = s
		} else {
			return invalidStatement("crit (2) holds a label that is neither an integer nor text")
		}
		if !understood[label] {
			return invalidStatement("crit (2) names header %v, which gavel does not process", label)
		}
		if _, present := phdr.Get(label); !present {
			return invalidStatement("crit (2) names header %v, which is absent", label)
		}
	}
	return nil
}

func parseX5Chain(phdr Header) ([]*x509.Certificate, error) {
	raw, ok := phdr.Get(LabelX5Chain)
	if !ok {
		return nil, invalidStatement("protected header has no x5chain (33)")
	}
	var ders [][]byte
	switch majorType(raw) {
	case majorBytes:
		der, err := DecodeBytes(raw)
		if err != nil {
			return nil, invalidStatement("x5chain (33): %v", err)
		}
		ders = [][]byte{der}
	case majorArray:
		items := arrayItems(raw)
		if len(items) == 0 {
			return nil, invalidStatement("x5chain (33) must be a byte string or a non-empty array of them")
		}
		for i, it := range items {
			der, err := DecodeBytes(it)
			if err != nil {
				return nil, invalidStatement("x5chain (33) item %d: %v", i, err)
			}
			ders = append(ders, der)
		}
	default:
		return nil, invalidStatement("x5chain (33) must be a byte string or a non-empty array of them")
	}
	chain := make([]*x509.Certificate, len(ders))
	for i, der := range ders {
		c, err := parseCertificate(der)
		if err != nil {
			return nil, engine.Wrap(engine.KindInvalid, CodeInvalidStatement, err, "x5chain (33) certificate %d does not parse", i)
		}
		chain[i] = c
	}
	return chain, nil
}

// parsedCerts keeps parsed certificates by the hash of their DER: issuers
// repeat their chains, and parsing is a large part of a statement's cost.
// Certificates are never modified after parsing, so sharing them is safe.
var parsedCerts = bounded.New[[32]byte, *x509.Certificate](4096)

func parseCertificate(der []byte) (*x509.Certificate, error) {
	k := sha256.Sum256(der)
	if c, ok := parsedCerts.Get(k); ok {
		return c, nil
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	parsedCerts.Put(k, c)
	return c, nil
}

func (st *Statement) parseClaims(phdr Header) error {
	claims, ok, err := phdr.Map(LabelCWTClaims)
	if !ok {
		return invalidStatement("protected header has no CWT claims (15)")
	}
	if err != nil {
		return invalidStatement("CWT claims (15): %v", err)
	}
	st.Claims = claims
	var present bool
	if st.Issuer, present, err = claims.Text(ClaimIssuer); !present || err != nil || st.Issuer == "" {
		return invalidStatement("CWT claims need a non-empty text iss (1)")
	}
	if st.Subject, present, err = claims.Text(ClaimSubject); !present || err != nil || st.Subject == "" {
		return invalidStatement("CWT claims need a non-empty text sub (2)")
	}
	if raw, ok := claims.Get(ClaimIssuedAt); ok {
		secs, err := DecodeNumericDate(raw)
		if err != nil {
			return invalidStatement("CWT claim iat (6): %v", err)
		}
		st.IssuedAt = time.Unix(secs, 0).UTC()
	}
	return nil
}

// DecodeNumericDate decodes a CWT NumericDate as integer seconds; the
// integer may carry tag 1 (epoch time), as Azure's signing service writes it.
func DecodeNumericDate(raw cbor.RawMessage) (int64, error) {
	if len(raw) > 0 && raw[0] == 0xc1 {
		var tag cbor.RawTag
		if err := engine.CBORDecode.Unmarshal(raw, &tag); err != nil {
			return 0, err
		}
		raw = tag.Content
	}
	return DecodeInt(raw)
}

func (st *Statement) parseHashEnvelope(phdr Header) error {
	alg, ok, err := phdr.Int(LabelPayloadHashAlg)
	if err != nil {
		return invalidStatement("payload-hash-alg (258): %v", err)
	}
	if !ok {
		for _, l := range []int64{LabelPreimageContentType, LabelPayloadLocation} {
			if _, present := phdr.Get(l); present {
				return invalidStatement("header %d needs payload-hash-alg (258)", l)
			}
		}
		return nil
	}
	if alg == 0 {
		return invalidStatement("payload-hash-alg (258) must not be 0")
	}
	st.PayloadHashAlg = alg
	if size, known := hashSizes[alg]; known && len(st.Payload) != size {
		return invalidStatement("hash envelope payload has %d bytes, payload-hash-alg %d gives %d", len(st.Payload), alg, size)
	}
	if raw, ok := phdr.Get(LabelPreimageContentType); ok {
		if st.PreimageContentType, err = contentType(raw); err != nil {
			return invalidStatement("preimage content type (259): %v", err)
		}
	}
	if st.PayloadLocation, ok, err = phdr.Text(LabelPayloadLocation); ok && err != nil {
		return invalidStatement("payload location (260): %v", err)
	}
	return nil
}

// contentType reads a content type: text, or a CoAP content format number.
func contentType(raw cbor.RawMessage) (string, error) {
	if majorType(raw) == majorUint {
		n, err := DecodeInt(raw)
		if err != nil || n > 65535 {
			return "", errString("content format number out of range")
		}
		return strconv.FormatInt(n, 10), nil
	}
	s, err := DecodeText(raw)
	if err != nil || s == "" {
		return "", errString("must be non-empty text or a content format number")
	}
	return s, nil
}

type errString string

func (e errString) Error() string { return string(e) }

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func invalidStatement(format string, args ...any) *engine.Error {
	return engine.Errorf(engine.KindInvalid, CodeInvalidStatement, format, args...)
}

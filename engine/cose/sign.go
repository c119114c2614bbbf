package cose

import (
	"crypto"
	"crypto/x509"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/gavelhq/gavel/engine"
)

// SignOption adjusts SignStatement.
type SignOption func(*signConfig)

type signConfig struct {
	alg      Algorithm
	extra    []headerEntry // protected header entries beyond the standard ones
	claims   []headerEntry // CWT claims beyond iss, sub, iat
	hashAlg  int64
	preimage string
	location string
}

type headerEntry struct {
	label any
	value any
}

// setIn stores a caller-supplied entry, refusing labels and values that are
// not valid in a COSE header.
func (e headerEntry) setIn(h Header) error {
	if _, ok := normalizeLabel(e.label); !ok {
		return invalidStatement("header label %v is neither an integer nor text", e.label)
	}
	b, err := engine.CBOR.Marshal(e.value)
	if err != nil {
		return engine.Wrap(engine.KindInvalid, CodeInvalidStatement, err, "header value for %v does not encode", e.label)
	}
	h.Set(e.label, b)
	return nil
}

// WithAlgorithm overrides the key's default algorithm, e.g. PS384 or PS512
// for an RSA key. It must fit the key.
func WithAlgorithm(alg Algorithm) SignOption { return func(c *signConfig) { c.alg = alg } }

// WithClaim adds a CWT claim, e.g. WithClaim("svn", 3).
func WithClaim(label, value any) SignOption {
	return func(c *signConfig) { c.claims = append(c.claims, headerEntry{label, value}) }
}

// WithHeader adds a protected header parameter.
func WithHeader(label, value any) SignOption {
	return func(c *signConfig) { c.extra = append(c.extra, headerEntry{label, value}) }
}

// WithHashEnvelope marks the payload as the hash of a preimage: headers 258
// (payload-hash-alg, e.g. -16 for SHA-256), 259 and 260 (omitted when "").
func WithHashEnvelope(hashAlg int64, preimageContentType, location string) SignOption {
	return func(c *signConfig) { c.hashAlg, c.preimage, c.location = hashAlg, preimageContentType, location }
}

// SignStatement makes a signed statement: a tagged COSE_Sign1 over payload
// whose protected header has alg (chosen from the key unless WithAlgorithm),
// content type (when not ""), CWT claims {iss, sub, iat (when not zero)} and
// x5chain (a byte string for one certificate, else an array, leaf first).
// The leaf certificate must hold the signer's public key.
func SignStatement(signer crypto.Signer, chain []*x509.Certificate, issuer, subject, contentType string, payload []byte, iat time.Time, opts ...SignOption) ([]byte, error) {
	var cfg signConfig
	for _, o := range opts {
		o(&cfg)
	}
	if len(chain) == 0 {
		return nil, invalidStatement("a signed statement needs an x5chain")
	}
	if k, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(signer.Public()) {
		return nil, invalidStatement("the leaf certificate does not hold the signer's public key")
	}
	if issuer == "" || subject == "" {
		return nil, invalidStatement("issuer and subject must not be empty")
	}
	if payload == nil {
		payload = []byte{}
	}
	alg := cfg.alg
	if alg == 0 {
		var err error
		if alg, err = DefaultAlgorithm(signer.Public()); err != nil {
			return nil, err
		}
	}
	claims := Header{}
	claims.Set(ClaimIssuer, encode(issuer))
	claims.Set(ClaimSubject, encode(subject))
	if !iat.IsZero() {
		claims.Set(ClaimIssuedAt, encode(iat.Unix()))
	}
	for _, c := range cfg.claims {
		if err := c.setIn(claims); err != nil {
			return nil, err
		}
	}
	phdr := Header{}
	phdr.Set(LabelAlg, encode(int64(alg)))
	if contentType != "" {
		phdr.Set(LabelContentType, encode(contentType))
	}
	phdr.Set(LabelCWTClaims, encode(claims))
	if len(chain) == 1 {
		phdr.Set(LabelX5Chain, encode(chain[0].Raw))
	} else {
		ders := make([][]byte, len(chain))
		for i, c := range chain {
			ders[i] = c.Raw
		}
		phdr.Set(LabelX5Chain, encode(ders))
	}
	if cfg.hashAlg != 0 {
		phdr.Set(LabelPayloadHashAlg, encode(cfg.hashAlg))
		if cfg.preimage != "" {
			phdr.Set(LabelPreimageContentType, encode(cfg.preimage))
		}
		if cfg.location != "" {
			phdr.Set(LabelPayloadLocation, encode(cfg.location))
		}
	}
	for _, e := range cfg.extra {
		if err := e.setIn(phdr); err != nil {
			return nil, err
		}
	}
	protected, err := phdr.Encode()
	if err != nil {
		return nil, err
	}
	sig, err := Sign(signer, alg, protected, payload)
	if err != nil {
		return nil, err
	}
	return (&Sign1{Protected: protected, Payload: payload, Signature: sig}).Encode()
}

// encode is the deterministic encoding of a header value built here from
// strings, integers, byte strings and maps of them.
func encode(v any) cbor.RawMessage {
	if h, ok := v.(Header); ok {
		b, err := h.Encode()
		if err != nil {
			panic(err)
		}
		return b
	}
	b, err := engine.CBOR.Marshal(v)
	if err != nil {
		panic("cose: header value does not encode: " + err.Error())
	}
	return b
}

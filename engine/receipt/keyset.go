package receipt

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
)

// KeySet holds trusted service public keys by kid. Receipts are checked
// against the keys alone, never against certificate validity dates: a
// service's certificates are renewed while its key stays.
type KeySet struct {
	keys map[string]crypto.PublicKey
}

// NewKeySet makes a set of the given keys.
func NewKeySet(keys ...crypto.PublicKey) (KeySet, error) {
	var s KeySet
	for _, k := range keys {
		if err := s.Add(k); err != nil {
			return KeySet{}, err
		}
	}
	return s, nil
}

// Add trusts key; adding a key twice is harmless.
func (s *KeySet) Add(key crypto.PublicKey) error {
	kid := KeyID(key)
	if kid == nil {
		return engine.Errorf(engine.KindInvalid, CodeInvalidServiceKey, "a %T cannot be a service key", key)
	}
	if _, err := cose.DefaultAlgorithm(key); err != nil {
		return engine.Wrap(engine.KindInvalid, CodeInvalidServiceKey, err, "service key")
	}
	if s.keys == nil {
		s.keys = map[string]crypto.PublicKey{}
	}
	s.keys[string(kid)] = key
	return nil
}

// Lookup returns the key whose KeyID is kid.
func (s KeySet) Lookup(kid []byte) (crypto.PublicKey, bool) {
	k, ok := s.keys[string(kid)]
	return k, ok
}

// Len is the number of distinct keys.
func (s KeySet) Len() int { return len(s.keys) }

// KeySetFromPEM trusts the key of every CERTIFICATE and every PUBLIC KEY
// block in data; other blocks are refused. At least one key is required.
func KeySetFromPEM(data []byte) (KeySet, error) {
	var s KeySet
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return KeySet{}, engine.Errorf(engine.KindInvalid, CodeInvalidServiceKey, "data after the last PEM block is not PEM")
		}
		var key crypto.PublicKey
		switch block.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return KeySet{}, engine.Wrap(engine.KindInvalid, CodeInvalidServiceKey, err, "service certificate does not parse")
			}
			key = c.PublicKey
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return KeySet{}, engine.Wrap(engine.KindInvalid, CodeInvalidServiceKey, err, "service public key does not parse")
			}
			key = k
		default:
			return KeySet{}, engine.Errorf(engine.KindInvalid, CodeInvalidServiceKey, "PEM block %q is neither a CERTIFICATE nor a PUBLIC KEY", block.Type)
		}
		if err := s.Add(key); err != nil {
			return KeySet{}, err
		}
		rest = bytes.TrimSpace(rest)
	}
	if s.Len() == 0 {
		return KeySet{}, engine.Errorf(engine.KindInvalid, CodeInvalidServiceKey, "no PEM certificate or public key")
	}
	return s, nil
}

// serviceParameters is the JSON a SCITT/CCF service publishes about its
// identities, e.g. {"parameters": [{"serviceCertificate": <base64 DER>,
// "serviceId": <hex SHA-256 of the DER>, "signatureAlgorithm": …,
// "treeAlgorithm": "CCF"}]}.
type serviceParameters struct {
	Parameters []struct {
		ServiceCertificate string `json:"serviceCertificate"`
		ServiceID          string `json:"serviceId"`
		TreeAlgorithm      string `json:"treeAlgorithm"`
	} `json:"parameters"`
}

// ParseServiceParameters trusts the key of every service certificate in a
// service-parameters JSON document. A serviceId, when present, must be the
// hex SHA-256 of the certificate; a treeAlgorithm, when present, must be
// "CCF". The advertised signatureAlgorithm is not used: the key decides.
func ParseServiceParameters(data []byte) (KeySet, error) {
	var doc serviceParameters
	if err := json.Unmarshal(data, &doc); err != nil {
		return KeySet{}, engine.Wrap(engine.KindInvalid, CodeInvalidServiceParameters, err, "service parameters are not JSON of the expected shape")
	}
	if len(doc.Parameters) == 0 {
		return KeySet{}, engine.Errorf(engine.KindInvalid, CodeInvalidServiceParameters, "service parameters list no service")
	}
	var s KeySet
	for i, p := range doc.Parameters {
		der, err := base64.StdEncoding.DecodeString(p.ServiceCertificate)
		if err != nil || len(der) == 0 {
			return KeySet{}, engine.Errorf(engine.KindInvalid, CodeInvalidServiceParameters, "parameters[%d].serviceCertificate is not base64 DER", i)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return KeySet{}, engine.Wrap(engine.KindInvalid, CodeInvalidServiceParameters, err, "parameters[%d].serviceCertificate does not parse", i)
		}
		if p.ServiceID != "" {
			sum := sha256.Sum256(der)
			if p.ServiceID != hex.EncodeToString(sum[:]) {
				return KeySet{}, engine.Errorf(engine.KindInvalid, CodeInvalidServiceParameters, "parameters[%d].serviceId is not the SHA-256 of its certificate", i)
			}
		}
		if p.TreeAlgorithm != "" && p.TreeAlgorithm != "CCF" {
			return KeySet{}, engine.Errorf(engine.KindInvalid, CodeInvalidServiceParameters, "parameters[%d].treeAlgorithm %q is not CCF", i, p.TreeAlgorithm)
		}
		if err := s.Add(c.PublicKey); err != nil {
			return KeySet{}, engine.Wrap(engine.KindInvalid, CodeInvalidServiceParameters, err, "parameters[%d]", i)
		}
	}
	return s, nil
}

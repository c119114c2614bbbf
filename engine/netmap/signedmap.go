package netmap

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"

	"github.com/fxamacker/cbor/v2"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
)

// MsgNetworkMap is the message type of the signed map.
const MsgNetworkMap = "network_map"

// CodeInvalidMap is the code of a signed map that does not verify.
const CodeInvalidMap = "InvalidNetworkMap"

// SignMap makes GET /network-map's body: a COSE_Sign1 by the network-map
// key over payload (MapPayload.Encode), with x5chain = chain (the map
// key's certificate first, then the service certificate), DER.
func SignMap(mapKey crypto.Signer, chain [][]byte, payload []byte) ([]byte, error) {
	s, err := NewMapSigner(mapKey, chain)
	if err != nil {
		return nil, err
	}
	m, err := s.sign(len(payload), func(b []byte) []byte { return append(b, payload...) })
	return m.Body, err
}

// MapSigner signs maps with the network-map key. The protected header is
// encoded once; each map is written into one buffer (the payload copied
// once) and, with an ECDSA key, hashed once: the digest of the
// Sig_structure is both what the key signs and the map's ETag.
type MapSigner struct {
	key       crypto.Signer
	alg       cose.Algorithm
	protected []byte
}

// SignedMap is a signed map and its ETag: the hex digest of the
// Sig_structure its signature covers (the protected header, fixed, and the
// payload), so it changes exactly when the payload does.
type SignedMap struct {
	Body []byte
	ETag string
}

// NewMapSigner prepares signing with mapKey and x5chain = chain.
func NewMapSigner(mapKey crypto.Signer, chain [][]byte) (*MapSigner, error) {
	alg, err := cose.DefaultAlgorithm(mapKey.Public())
	if err != nil {
		return nil, err
	}
	h := cose.Header{}
	h.Set(cose.LabelAlg, mustCBOR(int64(alg)))
	h.Set(cose.LabelContentType, mustCBOR("application/json"))
	h.Set(LabelMsgType, mustCBOR(MsgNetworkMap))
	h.Set(cose.LabelX5Chain, mustCBOR(chain))
	protected, err := h.Encode()
	if err != nil {
		return nil, err
	}
	return &MapSigner{key: mapKey, alg: alg, protected: protected}, nil
}

// Sign signs the index's payload.
func (s *MapSigner) Sign(x *MapIndex) (SignedMap, error) {
	return s.sign(x.PayloadLen(), x.AppendPayload)
}

// sign writes a payload of n bytes with write into the message's buffer
// and signs it.
func (s *MapSigner) sign(n int, write func([]byte) []byte) (SignedMap, error) {
	head, err := cose.Sign1Head(s.protected, cose.Header{}, n)
	if err != nil {
		return SignedMap{}, err
	}
	b := make([]byte, 0, len(head)+n+3+2*66) // the largest ECDSA signature: P-521's
	b = append(b, head...)
	b = write(b)
	payload := b[len(head):]
	if len(payload) != n {
		return SignedMap{}, engine.Errorf(engine.KindInternal, CodeInvalidMap, "the map payload has %d bytes, not %d", len(payload), n)
	}
	var sig, digest []byte
	if hash, ok := cose.PrehashOf(s.alg); ok {
		d := hash.New()
		d.Write(cose.SigStructureHead(s.protected, n))
		d.Write(payload)
		digest = d.Sum(nil)
		sig, err = cose.SignDigest(s.key, s.alg, digest)
	} else {
		tbs := cose.SigStructure(s.protected, payload)
		sum := sha256.Sum256(tbs)
		digest = sum[:]
		sig, err = cose.Sign(s.key, s.alg, s.protected, payload)
	}
	if err != nil {
		return SignedMap{}, err
	}
	return SignedMap{Body: cose.AppendSignature(b, sig), ETag: hex.EncodeToString(digest)}, nil
}

// VerifiedMap is a signed map whose chain leads to the service certificate
// and whose signature is the map key's.
type VerifiedMap struct {
	Payload MapPayload
	// MapKey is the key that signed it, which also signs parameters.
	MapKey crypto.PublicKey
}

// VerifyMap checks a signed map against the service certificate: x5chain
// is [map cert, service cert], the map cert is issued by the service cert,
// the signature is the map key's, and the payload is a map.
func VerifyMap(raw []byte, service *x509.Certificate) (VerifiedMap, error) {
	env, err := openEnvelope(raw, MsgNetworkMap, CodeInvalidMap, false)
	if err != nil {
		return VerifiedMap{}, err
	}
	h, _ := env.msg.ProtectedHeader()
	rawChain, ok := h.Get(cose.LabelX5Chain)
	var chain [][]byte
	if !ok || cbor.Unmarshal(rawChain, &chain) != nil || len(chain) != 2 {
		return VerifiedMap{}, engine.Errorf(engine.KindInvalid, CodeInvalidMap, "x5chain must be [network-map certificate, service certificate]")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return VerifiedMap{}, engine.Wrap(engine.KindInvalid, CodeInvalidMap, err, "the network-map certificate does not parse")
	}
	if string(chain[1]) != string(service.Raw) {
		return VerifiedMap{}, engine.Errorf(engine.KindInvalid, CodeInvalidMap, "the map's chain does not end at the service certificate")
	}
	if err := leaf.CheckSignatureFrom(service); err != nil {
		return VerifiedMap{}, engine.Wrap(engine.KindInvalid, CodeInvalidMap, err, "the network-map certificate is not issued by the service")
	}
	if err := env.verify(leaf.PublicKey); err != nil {
		return VerifiedMap{}, err
	}
	var m MapPayload
	if err := json.Unmarshal(env.msg.Payload, &m); err != nil {
		return VerifiedMap{}, engine.Wrap(engine.KindInvalid, CodeInvalidMap, err, "the map payload is not JSON")
	}
	return VerifiedMap{Payload: m, MapKey: leaf.PublicKey}, nil
}

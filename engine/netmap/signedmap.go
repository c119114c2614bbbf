package netmap

import (
	"crypto"
	"crypto/x509"
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
	sig, err := cose.Sign(mapKey, alg, protected, payload)
	if err != nil {
		return nil, err
	}
	return (&cose.Sign1{Protected: protected, Payload: payload, Signature: sig}).Encode()
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

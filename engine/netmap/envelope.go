package netmap

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
)

// Protected header labels of gavel's node and map envelopes, beside alg (1)
// and kid (4 = the node id as bytes of its hex text, as CCF's member kid).
const (
	// LabelMsgType separates the envelopes, so a NodeInfo signature cannot
	// be replayed as an acknowledgement.
	LabelMsgType = "gavel.msg.type"
	// LabelNodeKey is the node's public key (PKIX DER): NodeInfo files in
	// additional-node-infos and cached NodeInfos verify without the service.
	LabelNodeKey = "gavel.node.key"
)

// Message types at LabelMsgType.
const (
	MsgNodeInfo   = "node_info"
	MsgNodeAck    = "node_ack"
	MsgParameters = "network_parameters"
)

// Error codes of envelopes.
const (
	CodeInvalidNodeInfo  = "InvalidNodeInfo"
	CodeInvalidAck       = "InvalidAck"
	CodeInvalidSignature = cose.CodeInvalidSignature
)

// NodeID is a node's id: hex SHA-256 of its public key's PKIX DER.
func NodeID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", engine.Wrap(engine.KindInvalid, "InvalidKey", err, "public key does not encode")
	}
	return nodeIDOf(der), nil
}

func nodeIDOf(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

// signEnvelope makes a tagged COSE_Sign1 of payload by signer, with alg
// chosen from the key, the message type and, for node envelopes, kid and
// the node's key.
func signEnvelope(signer crypto.Signer, msgType string, payload []byte, node bool) ([]byte, error) {
	alg, err := cose.DefaultAlgorithm(signer.Public())
	if err != nil {
		return nil, err
	}
	h := cose.Header{}
	h.Set(cose.LabelAlg, mustCBOR(int64(alg)))
	h.Set(LabelMsgType, mustCBOR(msgType))
	if node {
		der, err := x509.MarshalPKIXPublicKey(signer.Public())
		if err != nil {
			return nil, engine.Wrap(engine.KindInvalid, "InvalidKey", err, "public key does not encode")
		}
		h.Set(cose.LabelKID, mustCBOR([]byte(nodeIDOf(der))))
		h.Set(LabelNodeKey, mustCBOR(der))
	} else {
		h.Set(cose.LabelContentType, mustCBOR("application/json"))
	}
	protected, err := h.Encode()
	if err != nil {
		return nil, err
	}
	if payload == nil {
		payload = []byte{}
	}
	sig, err := cose.Sign(signer, alg, protected, payload)
	if err != nil {
		return nil, err
	}
	return (&cose.Sign1{Protected: protected, Payload: payload, Signature: sig}).Encode()
}

func mustCBOR(v any) []byte {
	b, err := engine.CBOR.Marshal(v)
	if err != nil {
		panic("netmap: header value does not encode: " + err.Error())
	}
	return b
}

// signedEnvelope is a decoded envelope whose structure and headers were
// checked; the signature is checked by verify.
type signedEnvelope struct {
	msg    *cose.Sign1
	alg    cose.Algorithm
	nodeID string
	key    crypto.PublicKey
}

// openEnvelope decodes raw strictly and checks its headers: alg supported,
// the message type, no crit, an empty unprotected header, an attached
// payload and, for node envelopes, kid = NodeID(node key). code names the
// error.
func openEnvelope(raw []byte, msgType, code string, node bool) (*signedEnvelope, error) {
	bad := func(format string, args ...any) error {
		return engine.Errorf(engine.KindInvalid, code, format, args...)
	}
	m, err := cose.DecodeSign1(raw)
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, code, err, "not a COSE_Sign1")
	}
	if len(m.Unprotected) != 0 {
		return nil, bad("the unprotected header must be empty")
	}
	if m.Payload == nil {
		return nil, bad("the payload must be attached")
	}
	h, err := m.ProtectedHeader()
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, code, err, "protected header")
	}
	if _, ok := h.Get(cose.LabelCrit); ok {
		return nil, bad("crit is not supported")
	}
	algN, ok, err := h.Int(cose.LabelAlg)
	if err != nil || !ok {
		return nil, bad("the protected header needs an integer alg")
	}
	alg := cose.Algorithm(algN)
	if !alg.Supported() {
		return nil, engine.Errorf(engine.KindInvalid, cose.CodeUnsupportedAlgorithm, "algorithm %s is not supported", alg)
	}
	typ, ok, err := h.Text(LabelMsgType)
	if err != nil || !ok || typ != msgType {
		return nil, bad("%s must be %q", LabelMsgType, msgType)
	}
	env := &signedEnvelope{msg: m, alg: alg}
	if !node {
		return env, nil
	}
	kid, ok, err := h.Bytes(cose.LabelKID)
	if err != nil || !ok || !isLowerHex64(string(kid)) {
		return nil, bad("kid must be the node id, 64 lowercase hex characters")
	}
	der, ok, err := h.Bytes(LabelNodeKey)
	if err != nil || !ok {
		return nil, bad("%s must hold the node's public key", LabelNodeKey)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, code, err, "%s does not parse", LabelNodeKey)
	}
	if nodeIDOf(der) != string(kid) {
		return nil, bad("kid %s is not the id of the key in %s", kid, LabelNodeKey)
	}
	if err := alg.CheckKey(pub); err != nil {
		return nil, err
	}
	env.nodeID, env.key = string(kid), pub
	return env, nil
}

// verify checks the signature with key.
func (e *signedEnvelope) verify(key crypto.PublicKey) error {
	return cose.VerifySignature(e.alg, key, e.msg.Protected, e.msg.Payload, e.msg.Signature)
}

// SignParameters makes the signed network-parameters file and response: a
// COSE_Sign1 by the service's network-map key over the canonical JSON.
func SignParameters(mapKey crypto.Signer, p NetworkParameters) ([]byte, error) {
	return signEnvelope(mapKey, MsgParameters, p.Canonical(), false)
}

// VerifySignedParameters checks signed parameters against the service's
// network-map key and returns them with their hash. The payload must be the
// canonical form of what it holds, so its hash is the parameters hash.
func VerifySignedParameters(raw []byte, mapKey crypto.PublicKey, lim Limits) (NetworkParameters, string, error) {
	env, err := openEnvelope(raw, MsgParameters, CodeInvalidParameters, false)
	if err != nil {
		return NetworkParameters{}, "", err
	}
	if err := env.verify(mapKey); err != nil {
		return NetworkParameters{}, "", engine.Wrap(engine.KindInvalid, cose.CodeInvalidSignature, err,
			"network parameters are not signed by the service's network-map key")
	}
	p, err := ParseParameters(env.msg.Payload, lim)
	if err != nil {
		return NetworkParameters{}, "", err
	}
	if !bytes.Equal(p.Canonical(), env.msg.Payload) {
		return NetworkParameters{}, "", invalidParams("signed network parameters are not in canonical form.")
	}
	if err := p.Validate(lim); err != nil {
		return NetworkParameters{}, "", err
	}
	return p, p.Hash(), nil
}

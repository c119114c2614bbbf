package netmap

import (
	"crypto"
	"encoding/json"
	"fmt"
	"net"
	"strconv"

	"github.com/gavelhq/gavel/engine"
)

// NodeInfo is the payload of a signed NodeInfo.
type NodeInfo struct {
	Addresses       []string `json:"addresses"`
	LegalIdentities []string `json:"legal_identities"`
	PlatformVersion int      `json:"platform_version"`
	Serial          int64    `json:"serial"`
}

type wireNodeInfo struct {
	Addresses       *[]string `json:"addresses"`
	LegalIdentities *[]string `json:"legal_identities"`
	PlatformVersion *int      `json:"platform_version"`
	Serial          *int64    `json:"serial"`
}

// SignNodeInfo makes a signed NodeInfo: a COSE_Sign1 by the node's key over
// info's JSON.
func SignNodeInfo(node crypto.Signer, info NodeInfo) ([]byte, error) {
	payload, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	return SignNodeInfoPayload(node, payload)
}

// SignNodeInfoPayload signs payload bytes as they are (tests use it for
// payloads that break the schema).
func SignNodeInfoPayload(node crypto.Signer, payload []byte) ([]byte, error) {
	return signEnvelope(node, MsgNodeInfo, payload, true)
}

// ParsedNodeInfo is a NodeInfo whose envelope and payload passed the schema;
// its signature is not checked yet.
type ParsedNodeInfo struct {
	env  *signedEnvelope
	Raw  []byte
	Hash string // hex SHA-256 of the payload
	// NodeID is the kid, which is the id of the key in the envelope.
	NodeID string
	Info   NodeInfo
	// Names are the legal identities in normal form, in payload order.
	Names []string
}

// VerifiedNodeInfo is a NodeInfo signed by the key its node id names.
type VerifiedNodeInfo struct{ ParsedNodeInfo }

func invalidNodeInfo(format string, args ...any) *engine.Error {
	return engine.Errorf(engine.KindInvalid, CodeInvalidNodeInfo, format, args...)
}

// ParseNodeInfo checks a signed NodeInfo's structure and its payload's
// schema and limits.
func ParseNodeInfo(raw []byte, lim Limits) (*ParsedNodeInfo, error) {
	if len(raw) > lim.MaxNodeInfoBytes {
		return nil, engine.Errorf(engine.KindTooLarge, CodeInvalidNodeInfo, "the signed NodeInfo is %d bytes, the limit is %d", len(raw), lim.MaxNodeInfoBytes)
	}
	env, err := openEnvelope(raw, MsgNodeInfo, CodeInvalidNodeInfo, true)
	if err != nil {
		return nil, err
	}
	var w wireNodeInfo
	if err := decodeStrict(env.msg.Payload, &w); err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeInvalidNodeInfo, err, "the NodeInfo payload is not valid JSON of its schema")
	}
	switch {
	case w.Addresses == nil:
		return nil, invalidNodeInfo("addresses is required")
	case w.LegalIdentities == nil:
		return nil, invalidNodeInfo("legal_identities is required")
	case w.PlatformVersion == nil:
		return nil, invalidNodeInfo("platform_version is required")
	case w.Serial == nil:
		return nil, invalidNodeInfo("serial is required")
	}
	info := NodeInfo{Addresses: *w.Addresses, LegalIdentities: *w.LegalIdentities, PlatformVersion: *w.PlatformVersion, Serial: *w.Serial}
	names, err := checkNodeInfo(info, lim)
	if err != nil {
		return nil, err
	}
	return &ParsedNodeInfo{env: env, Raw: raw, Hash: hashHex(env.msg.Payload), NodeID: env.nodeID, Info: info, Names: names}, nil
}

func checkNodeInfo(info NodeInfo, lim Limits) ([]string, error) {
	if n := len(info.Addresses); n == 0 || n > lim.MaxAddresses {
		return nil, engine.Errorf(kindForCount(n), CodeInvalidNodeInfo, "addresses has %d entries; it needs 1 to %d", n, lim.MaxAddresses)
	}
	seen := map[string]bool{}
	for i, a := range info.Addresses {
		if len(a) > lim.MaxAddressBytes {
			return nil, engine.Errorf(engine.KindTooLarge, CodeInvalidNodeInfo, "addresses[%d] is %d bytes, the limit is %d", i, len(a), lim.MaxAddressBytes)
		}
		if err := checkAddress(a); err != nil {
			return nil, invalidNodeInfo("addresses[%d] %v", i, err)
		}
		if seen[a] {
			return nil, invalidNodeInfo("addresses lists %q twice", a)
		}
		seen[a] = true
	}
	if n := len(info.LegalIdentities); n == 0 || n > lim.MaxLegalIdentities {
		return nil, engine.Errorf(kindForCount(n), CodeInvalidNodeInfo, "legal_identities has %d entries; it needs 1 to %d", n, lim.MaxLegalIdentities)
	}
	names := make([]string, 0, len(info.LegalIdentities))
	held := map[string]bool{}
	for i, n := range info.LegalIdentities {
		if len(n) > lim.MaxLegalNameBytes {
			return nil, engine.Errorf(engine.KindTooLarge, CodeInvalidNodeInfo, "legal_identities[%d] is %d bytes, the limit is %d", i, len(n), lim.MaxLegalNameBytes)
		}
		norm, err := NormalizeLegalName(n)
		if err != nil {
			return nil, invalidNodeInfo("legal_identities[%d] is not a legal name: %v", i, err)
		}
		if held[norm] {
			return nil, invalidNodeInfo("legal_identities lists %q twice", norm)
		}
		held[norm] = true
		names = append(names, norm)
	}
	if info.PlatformVersion < 1 {
		return nil, invalidNodeInfo("platform_version must be at least 1, not %d", info.PlatformVersion)
	}
	if info.Serial < 0 {
		return nil, invalidNodeInfo("serial must not be negative")
	}
	return names, nil
}

func kindForCount(n int) engine.Kind {
	if n == 0 {
		return engine.KindInvalid
	}
	return engine.KindTooLarge
}

func checkAddress(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return fmt.Errorf("%q is not host:port", truncate(a))
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
		return fmt.Errorf("%q has no port between 1 and 65535", truncate(a))
	}
	for _, r := range host {
		if r <= ' ' || r == 0x7f || r == '/' || r == '@' {
			return fmt.Errorf("%q has a bad host", truncate(a))
		}
	}
	return nil
}

// SelfVerify checks the signature with the key in the envelope: what the
// node agent does for files and cached NodeInfos, which the service signed
// nothing of.
func (p *ParsedNodeInfo) SelfVerify() (VerifiedNodeInfo, error) {
	if err := p.env.verify(p.env.key); err != nil {
		return VerifiedNodeInfo{}, err
	}
	return VerifiedNodeInfo{*p}, nil
}

// VerifyNodeInfo parses a signed NodeInfo and checks that it is signed by
// the key the nodes table holds for its node: the service's check before
// sequencing. Unknown node: UnknownNode (401); a key that is not the
// node's, or a bad signature: InvalidSignature.
func VerifyNodeInfo(raw []byte, dir NodeDirectory, lim Limits) (VerifiedNodeInfo, error) {
	p, err := ParseNodeInfo(raw, lim)
	if err != nil {
		return VerifiedNodeInfo{}, err
	}
	_, key, err := lookupNode(dir, p.NodeID)
	if err != nil {
		return VerifiedNodeInfo{}, err
	}
	if err := checkSameKey(key, p.env.key, p.NodeID); err != nil {
		return VerifiedNodeInfo{}, err
	}
	return p.SelfVerify()
}

func checkSameKey(recorded, carried crypto.PublicKey, id string) error {
	k, ok := recorded.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !k.Equal(carried) {
		return engine.Errorf(engine.KindInvalid, CodeInvalidSignature, "the envelope's key is not node %s's key", id)
	}
	return nil
}

package engine

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
)

// Entry authentication. Every message of the ledger stream carries two
// headers set by the replica that appended it: its node id and its Ed25519
// signature over AuthMessage (stream sequence, SHA-256 of the data,
// subject). Binding the sequence makes a genuine entry copied to another
// position fail; binding the subject stops a kind being relabelled.
// Readers check the signer against the service nodes Trusted as of the
// entry before, and fold anything that fails as a void entry.
const (
	HeaderNode = "Gavel-Node" // the signer's node id: 64 lowercase hex
	HeaderAuth = "Gavel-Auth" // standard padded base64 of the 64-byte signature
)

// authContext separates entry signatures from anything else a node key signs.
const authContext = "gavel-ledger-entry-v1\x00"

// Node table fields the entry check reads (CCF's names).
const (
	TableNodes      = "gov.nodes.info" // node id → NodeRecord (JSON)
	NodeRoleService = "service"
	NodeTrusted     = "Trusted"
)

// Why a message is not an authenticated entry; a void entry's reason wraps one.
var (
	ErrAuthMissing   = errors.New("no Gavel-Node or Gavel-Auth header")
	ErrAuthMalformed = errors.New("malformed authentication header")
	ErrUnknownNode   = errors.New("signer is not a trusted service node")
	ErrBadSignature  = errors.New("entry signature does not verify")
	ErrMisplaced     = errors.New("entry does not claim its place in the log")
)

// LedgerMsg is a message of the ledger stream as a reader receives it:
// not yet trusted.
type LedgerMsg struct {
	Seq     uint64 // stream sequence
	Subject string
	Data    []byte
	Node    string // HeaderNode
	Auth    string // HeaderAuth
}

// NodeRecord is a node's value in TableNodes. Governance reads and rewrites
// it as JSON, keeping fields it does not know.
type NodeRecord struct {
	NodeID    string `json:"node_id"`
	Status    string `json:"status"`
	Role      string `json:"role"`
	PublicKey string `json:"public_key"`     // PEM, PKIX
	Cert      string `json:"cert,omitempty"` // PEM, the node's self-signed certificate
}

// ServiceNodeRecord is the record of a Trusted service node with key pub.
func ServiceNodeRecord(pub ed25519.PublicKey, certPEM []byte) NodeRecord {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic("engine: ed25519 key does not marshal: " + err.Error())
	}
	return NodeRecord{NodeID: NodeID(pub), Status: NodeTrusted, Role: NodeRoleService,
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), Cert: string(certPEM)}
}

// Write is the nodes table write that records r.
func (r NodeRecord) Write() Write {
	v, err := json.Marshal(r)
	if err != nil {
		panic("engine: node record does not encode: " + err.Error()) // strings only
	}
	return Write{Table: TableNodes, Key: r.NodeID, Value: v}
}

// NodeID is DESIGN.md's node id: hex SHA-256 of the public key's PKIX DER.
func NodeID(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic("engine: ed25519 key does not marshal: " + err.Error()) // only a wrong-size key
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// AuthMessage is what a node signs for data published on subject at
// stream sequence seq: a context string, seq (8 bytes big-endian),
// SHA-256(data) and the subject.
func AuthMessage(seq uint64, subject string, data []byte) []byte {
	b := make([]byte, 0, len(authContext)+8+32+len(subject))
	b = append(b, authContext...)
	b = binary.BigEndian.AppendUint64(b, seq)
	d := sha256.Sum256(data)
	b = append(b, d[:]...)
	return append(b, subject...)
}

// NodeSigner authenticates ledger messages with a node's key.
type NodeSigner struct {
	id  string
	key ed25519.PrivateKey
}

// NewNodeSigner signs with key.
func NewNodeSigner(key ed25519.PrivateKey) *NodeSigner {
	return &NodeSigner{id: NodeID(key.Public().(ed25519.PublicKey)), key: key}
}

// ID is the signer's node id.
func (s *NodeSigner) ID() string { return s.id }

// Public is the signer's public key.
func (s *NodeSigner) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Sign returns the HeaderAuth value for data on subject at sequence seq.
func (s *NodeSigner) Sign(seq uint64, subject string, data []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, AuthMessage(seq, subject, data)))
}

// ParseAuthHeaders checks the two header values' form and returns the node
// id and the signature.
func ParseAuthHeaders(node, auth string) (string, []byte, error) {
	if node == "" || auth == "" {
		return "", nil, ErrAuthMissing
	}
	if len(node) != 64 {
		return "", nil, fmt.Errorf("%w: node id of %d characters", ErrAuthMalformed, len(node))
	}
	for _, c := range []byte(node) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", nil, fmt.Errorf("%w: node id is not lowercase hex", ErrAuthMalformed)
		}
	}
	if len(auth) != base64.StdEncoding.EncodedLen(ed25519.SignatureSize) {
		return "", nil, fmt.Errorf("%w: signature of %d characters", ErrAuthMalformed, len(auth))
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(auth)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", nil, fmt.Errorf("%w: signature is not base64", ErrAuthMalformed)
	}
	return node, sig, nil
}

// TrustedNodes is the set of service nodes whose entries readers accept.
// A reader folds each accepted entry's write set into it (Observe), so it
// is always the set as of the entry before the one checked.
type TrustedNodes struct {
	keys    map[string]ed25519.PublicKey
	version uint64
}

// NewTrustedNodes is the empty set: a reader starting at seqno 1.
func NewTrustedNodes() *TrustedNodes { return &TrustedNodes{keys: map[string]ed25519.PublicKey{}} }

// LoadTrustedNodes reads the trusted service nodes from state.
func LoadTrustedNodes(st StateReader) (*TrustedNodes, error) {
	t := NewTrustedNodes()
	err := st.Range(TableNodes, func(id string, v []byte) bool {
		t.put(id, v)
		return true
	})
	return t, err
}

// Trusts reports whether node id is a trusted service node.
func (t *TrustedNodes) Trusts(id string) bool { _, ok := t.keys[id]; return ok }

// IDs are the trusted service nodes' ids, sorted.
func (t *TrustedNodes) IDs() []string {
	ids := make([]string, 0, len(t.keys))
	for id := range t.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Observe folds an accepted entry's writes to the nodes table.
func (t *TrustedNodes) Observe(ws WriteSet) {
	for _, w := range ws {
		if w.Table != TableNodes {
			continue
		}
		t.version++
		if w.Delete {
			delete(t.keys, w.Key)
			continue
		}
		t.put(w.Key, w.Value)
	}
}

func (t *TrustedNodes) put(id string, v []byte) {
	if key, err := serviceNodeKey(id, v); err == nil {
		t.keys[id] = key
	} else {
		delete(t.keys, id)
	}
}

// IsTrustedServiceNode says whether v, node id's record, makes it a
// Trusted service node whose entries authenticate.
func IsTrustedServiceNode(id string, v []byte) bool {
	_, err := serviceNodeKey(id, v)
	return err == nil
}

// serviceNodeKey is the key of a Trusted service node's record, or an error
// saying why the record names none.
func serviceNodeKey(id string, v []byte) (ed25519.PublicKey, error) {
	var rec NodeRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("node %s: record: %w", id, err)
	}
	if rec.Status != NodeTrusted || rec.Role != NodeRoleService {
		return nil, fmt.Errorf("node %s is %s %s, not a Trusted service node", id, rec.Status, rec.Role)
	}
	blk, _ := pem.Decode([]byte(rec.PublicKey))
	if blk == nil {
		return nil, fmt.Errorf("node %s: public key is not PEM", id)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("node %s: public key: %w", id, err)
	}
	key, ok := pub.(ed25519.PublicKey)
	if !ok || NodeID(key) != id {
		return nil, fmt.Errorf("node %s: public key is not its Ed25519 key", id)
	}
	return key, nil
}

// OpenEntry authenticates m against the trusted nodes, then decodes it
// and checks that it claims its own place (seqno = stream sequence,
// subject = its kind's). The message at sequence 1 must be the genesis
// entry, checked against the service node it records itself. Any error
// means m is not an authenticated entry: fold it as VoidEntry.
func (t *TrustedNodes) OpenEntry(m LedgerMsg) (*Entry, error) {
	if m.Seq == 1 {
		node, sig, err := ParseAuthHeaders(m.Node, m.Auth)
		if err != nil {
			return nil, err
		}
		return openGenesis(m, node, sig)
	}
	a, err := t.Authenticate(m)
	if err != nil {
		return nil, err
	}
	return a.Open()
}

// AuthenticatedMsg is a ledger message whose signature is a trusted
// node's; only Authenticate makes one.
type AuthenticatedMsg struct {
	m  LedgerMsg
	ok bool
}

// Authenticate checks m's headers and signature against the trusted nodes:
// the part of OpenEntry that readers may run ahead, in parallel, while
// the set does not change (Version). The message at sequence 1 is the
// genesis entry's, which only OpenEntry checks.
func (t *TrustedNodes) Authenticate(m LedgerMsg) (AuthenticatedMsg, error) {
	node, sig, err := ParseAuthHeaders(m.Node, m.Auth)
	if err != nil {
		return AuthenticatedMsg{}, err
	}
	if m.Seq <= 1 {
		return AuthenticatedMsg{}, fmt.Errorf("%w: the genesis entry authenticates by the node it records", ErrMisplaced)
	}
	key, ok := t.keys[node]
	if !ok {
		return AuthenticatedMsg{}, fmt.Errorf("%w: %s", ErrUnknownNode, node)
	}
	if !ed25519.Verify(key, AuthMessage(m.Seq, m.Subject, m.Data), sig) {
		return AuthenticatedMsg{}, fmt.Errorf("%w: node %s", ErrBadSignature, node)
	}
	return AuthenticatedMsg{m: m, ok: true}, nil
}

// Open decodes an authenticated message and checks that the entry claims
// its own place.
func (a AuthenticatedMsg) Open() (*Entry, error) {
	if !a.ok {
		return nil, ErrAuthMissing
	}
	e, err := DecodeEntry(a.m.Data)
	if err != nil {
		return nil, err
	}
	if err := checkPlace(e, a.m); err != nil {
		return nil, err
	}
	return e, nil
}

// Clone is an independent copy of the set at its current version, for
// readers that authenticate ahead on other goroutines.
func (t *TrustedNodes) Clone() *TrustedNodes {
	c := &TrustedNodes{keys: make(map[string]ed25519.PublicKey, len(t.keys)), version: t.version}
	for id, k := range t.keys {
		c.keys[id] = k
	}
	return c
}

// Version changes whenever Observe changes the set.
func (t *TrustedNodes) Version() uint64 { return t.version }

// openGenesis decodes the first message before its check, since the key
// that signs it is the one it records.
func openGenesis(m LedgerMsg, node string, sig []byte) (*Entry, error) {
	e, err := DecodeEntry(m.Data)
	if err != nil {
		return nil, err
	}
	if err := checkPlace(e, m); err != nil {
		return nil, err
	}
	if e.Kind != KindGenesis {
		return nil, fmt.Errorf("%w: the first entry is %s, not genesis", ErrMisplaced, e.Kind)
	}
	v, ok := e.Writes.Value(TableNodes, node)
	if !ok {
		return nil, fmt.Errorf("%w: genesis does not record its signer %s", ErrUnknownNode, node)
	}
	key, err := serviceNodeKey(node, v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownNode, err)
	}
	if !ed25519.Verify(key, AuthMessage(m.Seq, m.Subject, m.Data), sig) {
		return nil, fmt.Errorf("%w: node %s", ErrBadSignature, node)
	}
	return e, nil
}

func checkPlace(e *Entry, m LedgerMsg) error {
	if e.Seqno != m.Seq || e.Subject() != m.Subject {
		return fmt.Errorf("%w: stream sequence %d (%s) holds entry %s (%s)", ErrMisplaced, m.Seq, m.Subject, e.TxID(), e.Subject())
	}
	return nil
}

// KindVoid marks a stream message that is not an authenticated entry. It
// is never encoded (Validate refuses it), executed or applied: its only
// trace is its leaf, VoidLeaf.
const KindVoid EntryKind = "void"

// VoidLeafPreimage and VoidLeaf: a void entry's Merkle leaf is
// SHA-256("gavel:void") =
// 9712ec4f4b66a7a77122e052de8ce1b013dd9ddd8ee3fb1cc5817643f0746c14 — pinned
// by TestVoidLeafIsPinned — so the stream sequence stays the seqno and
// every reader derives the same root without trusting the message.
const VoidLeafPreimage = "gavel:void"

// VoidLeaf is SHA-256(VoidLeafPreimage).
var VoidLeaf = sha256.Sum256([]byte(VoidLeafPreimage))

// VoidEntry is the fold of a message at seq that is not an authenticated
// entry: no writes, the view and time of the entry before it, and the
// reason. Its leaf is VoidLeaf.
func VoidEntry(seq, view uint64, timeMillis int64, reason error) *Entry {
	return &Entry{Kind: KindVoid, View: view, Seqno: seq, TimeMillis: timeMillis, Writes: WriteSet{},
		WriteSetDigest: WriteSet{}.Digest(), VoidReason: reason.Error()}
}

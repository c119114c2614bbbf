package netmap

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"

	"github.com/gavelhq/gavel/engine"
)

// NodeRecord is a node's record in the governance nodes table, the one
// entry authentication reads (engine.NodeRecord): its key is a PEM "PUBLIC
// KEY" under public_key, or its certificate under cert.
type NodeRecord = engine.NodeRecord

// recordKey parses a record's public key.
func recordKey(r NodeRecord) (crypto.PublicKey, error) {
	src := r.PublicKey
	if src == "" {
		src = r.Cert
	}
	b, _ := pem.Decode([]byte(src))
	if b == nil {
		return nil, fmt.Errorf("node %s has no PEM key", r.NodeID)
	}
	switch b.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(b.Bytes)
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		return c.PublicKey, nil
	}
	return nil, fmt.Errorf("node %s: PEM block %q is not a key", r.NodeID, b.Type)
}

// NodeDirectory is the map's view of the nodes table: who a node is, its
// status and its key. Implementations read state only.
type NodeDirectory interface {
	Node(id string) (NodeRecord, bool, error)
}

// DirectoryFunc builds the directory a command reads from the state it
// executes against; nil means TableDirectory over NodesDirectoryTable.
type DirectoryFunc func(engine.StateReader) NodeDirectory

func directoryOf(f DirectoryFunc, st engine.StateReader) NodeDirectory {
	if f == nil {
		return TableDirectory{State: st, Table: NodesDirectoryTable}
	}
	return f(st)
}

// TableDirectory reads NodeRecords as JSON from a table keyed by node id.
type TableDirectory struct {
	State engine.StateReader
	Table string
}

// Node implements NodeDirectory.
func (d TableDirectory) Node(id string) (NodeRecord, bool, error) {
	b, ok, err := d.State.Get(d.Table, id)
	if err != nil || !ok {
		return NodeRecord{}, false, err
	}
	var r NodeRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return NodeRecord{}, false, fmt.Errorf("netmap: node %s: %w", id, err)
	}
	if r.NodeID == "" {
		r.NodeID = id
	}
	return r, true, nil
}

// lookupNode returns the node's record and key, checking that the key is
// the one its id names. An unknown node is KindUnauthorized UnknownNode.
func lookupNode(dir NodeDirectory, id string) (NodeRecord, crypto.PublicKey, error) {
	rec, ok, err := dir.Node(id)
	if err != nil {
		return NodeRecord{}, nil, err
	}
	if !ok {
		return NodeRecord{}, nil, engine.Errorf(engine.KindUnauthorized, CodeUnknownNode, "node %s is not a node of this service", id)
	}
	key, err := recordKey(rec)
	if err != nil {
		return NodeRecord{}, nil, engine.Wrap(engine.KindInternal, "InvalidNodeRecord", err, "node %s has no usable key", id)
	}
	if kid, err := NodeID(key); err != nil || kid != id {
		return NodeRecord{}, nil, engine.Errorf(engine.KindInternal, "InvalidNodeRecord", "node %s's recorded key has another id", id)
	}
	return rec, key, nil
}

// requireTrusted refuses a node that is not Trusted (403).
func requireTrusted(rec NodeRecord) error {
	if rec.Status != StatusTrusted {
		return engine.Errorf(engine.KindForbidden, CodeNodeNotTrusted, "node %s is %s; only Trusted nodes may do this", rec.NodeID, statusText(rec.Status))
	}
	return nil
}

func statusText(s string) string {
	if s == "" {
		return "without a status"
	}
	return s
}

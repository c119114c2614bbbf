package projections

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"strings"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/nodes"
)

// NodeView is a node as GET /node/network/nodes shows it (CCF's
// GetNode.Out fields, with gavel's role and address).
type NodeView struct {
	NodeID           string          `json:"node_id"`
	Status           string          `json:"status"`
	Role             string          `json:"role"`
	Address          string          `json:"address,omitempty"`
	HostData         string          `json:"host_data"`
	CodeVersion      string          `json:"code_version"`
	Primary          bool            `json:"primary"`
	RetiredCommitted bool            `json:"retired_committed"`
	NodeData         json.RawMessage `json:"node_data"`
	LastWritten      uint64          `json:"last_written"`
}

// HostDataView is one trusted host data value, its security policy checked
// against its digest (nodes.HostData).
type HostDataView = nodes.HostData

// Nodes reads the node read model — the tables nodes.Projector folds from
// the log, kept in pebble beside the state — through one snapshot (Model),
// and the primary's node id, which the log does not say.
type Nodes struct {
	Model   engine.StateReader
	Primary string
}

func (n Nodes) view(m nodes.ModelNode) (NodeView, error) {
	if m.Unreadable != "" {
		return NodeView{}, engine.Errorf(engine.KindInternal, "CorruptNodeRecord", "node %s: %s", clipID(m.NodeID), m.Unreadable)
	}
	return NodeView{NodeID: m.NodeID, Status: m.Status, Role: m.Role, Address: m.Address, HostData: m.HostData,
		CodeVersion: m.CodeVersion, Primary: m.NodeID == n.Primary, RetiredCommitted: m.RetirementSigned && m.NodeID != n.Primary,
		NodeData: m.NodeData, LastWritten: m.LastWritten}, nil
}

func (n Nodes) load(id string) (NodeView, bool, error) {
	v, ok, err := n.Model.Get(nodes.ModelNodes, id)
	if err != nil || !ok {
		return NodeView{}, false, err
	}
	var m nodes.ModelNode
	if err := json.Unmarshal(v, &m); err != nil {
		return NodeView{}, false, engine.Wrap(engine.KindInternal, "CorruptReadModel", err, "node %s in the read model", clipID(id))
	}
	view, err := n.view(m)
	return view, err == nil, err
}

// pageOf ranges table's keys in order (each mapped to a node id by id,
// which skips it or stops the range) and loads up to page.Limit nodes
// after page.After that keep returns true for.
func (n Nodes) pageOf(table string, id func(key string) (nid string, skip, stop bool), keep func(NodeView) bool, page Page) ([]NodeView, bool, error) {
	out := []NodeView{}
	more := false
	var loadErr error
	err := n.Model.Range(table, func(k string, _ []byte) bool {
		nid, skip, stop := id(k)
		if stop {
			return false
		}
		if skip {
			return true
		}
		if page.After != "" && nid <= page.After {
			return true
		}
		v, found, err := n.load(nid)
		if err != nil {
			loadErr = err
			return false
		}
		if !found || !keep(v) {
			return true
		}
		if page.Limit > 0 && len(out) == page.Limit {
			more = true
			return false
		}
		out = append(out, v)
		return true
	})
	if err == nil {
		err = loadErr
	}
	return out, more, err
}

// List is one page of the nodes in id order, only those of a status
// (from the status index) or whose address has the host (or is the
// host:port) when given.
func (n Nodes) List(status, host string, page Page) ([]NodeView, bool, error) {
	keep := func(v NodeView) bool {
		if host == "" {
			return true
		}
		h, _, _ := net.SplitHostPort(v.Address)
		return host == h || host == v.Address
	}
	if status == "" {
		return n.pageOf(nodes.ModelNodes, func(k string) (string, bool, bool) { return k, false, false }, keep, page)
	}
	// The status index is in status order: its keys end past the prefix.
	prefix := status + "/"
	return n.pageOf(nodes.ModelByStatus, func(k string) (string, bool, bool) {
		id, ok := strings.CutPrefix(k, prefix)
		return id, !ok, !ok && k > prefix
	}, keep, page)
}

// Get is one node (404 NodeNotFound when unknown or deleted).
func (n Nodes) Get(id string) (NodeView, error) {
	v, ok, err := n.load(id)
	if err != nil {
		return NodeView{}, err
	}
	if !ok {
		return NodeView{}, engine.Errorf(engine.KindNotFound, nodes.CodeNodeNotFound, "no node %s", clipID(id))
	}
	return v, nil
}

// Removable is one page of the nodes DELETE accepts: retired, the
// retirement covered by a signature, not the primary.
func (n Nodes) Removable(page Page) ([]NodeView, bool, error) {
	return n.pageOf(nodes.ModelSigned, func(k string) (string, bool, bool) { return k, k == n.Primary, false },
		func(NodeView) bool { return true }, page)
}

// RetiredCommitted says whether node id is removable now.
func (n Nodes) RetiredCommitted(id string) bool {
	return nodes.RetiredCommitted(n.Model, id, n.Primary)
}

// TrustedHostData is the host data a node may join with without a
// transparent statement, SEV-SNP first, each in host data order.
func (n Nodes) TrustedHostData() ([]HostDataView, error) {
	out := []HostDataView{}
	var bad error
	err := n.Model.Range(nodes.ModelHostData, func(k string, v []byte) bool {
		var h HostDataView
		if err := json.Unmarshal(v, &h); err != nil {
			bad = engine.Wrap(engine.KindInternal, "CorruptReadModel", err, "host data %s in the read model", clipID(k))
			return false
		}
		out = append(out, h)
		return true
	})
	if err == nil {
		err = bad
	}
	return out, err
}

// JoinPolicy is the join policy in force ("" and false: none).
func (n Nodes) JoinPolicy() (string, bool, error) {
	v, ok, err := n.Model.Get(nodes.ModelPolicy, "")
	if err != nil || !ok {
		return "", false, err
	}
	var src string
	if err := json.Unmarshal(v, &src); err != nil {
		return "", false, engine.Wrap(engine.KindInternal, "CorruptJoinPolicy", err, "join policy")
	}
	return src, true, nil
}

// Dump is every key of the node read model, table by table in key order:
// what a rebuild must reproduce byte for byte.
func (n Nodes) Dump() (engine.WriteSet, error) {
	ws := engine.WriteSet{}
	for _, t := range nodes.ModelTables {
		if err := n.Model.Range(t, func(k string, v []byte) bool {
			ws = append(ws, engine.Write{Table: t, Key: k, Value: v})
			return true
		}); err != nil {
			return nil, err
		}
	}
	return ws, nil
}

// NodesSnapshot is the whole node read model, as `gavel projections
// rebuild` prints it and a test compares it with the live one. ModelSHA256
// is the digest of the model's every key and value (Dump, as canonical
// CBOR): equal digests are equal models.
type NodesSnapshot struct {
	Seqno           uint64         `json:"seqno"`
	LastSignature   uint64         `json:"last_signature"`
	Nodes           []NodeView     `json:"nodes"`
	Removable       []NodeView     `json:"removable_nodes"`
	TrustedHostData []HostDataView `json:"trusted_host_data"`
	JoinPolicy      *string        `json:"join_policy"`
	ModelSHA256     string         `json:"model_sha256"`
}

// Snapshot reads every view at once.
func (n Nodes) Snapshot() (NodesSnapshot, error) {
	var s NodesSnapshot
	pos, err := nodes.ReadPosition(n.Model)
	if err != nil {
		return s, err
	}
	s.Seqno, s.LastSignature = pos.Seqno, pos.LastSignature
	if s.Nodes, _, err = n.List("", "", Page{}); err != nil {
		return s, err
	}
	if s.Removable, _, err = n.Removable(Page{}); err != nil {
		return s, err
	}
	if s.TrustedHostData, err = n.TrustedHostData(); err != nil {
		return s, err
	}
	if src, ok, err := n.JoinPolicy(); err != nil {
		return s, err
	} else if ok {
		s.JoinPolicy = &src
	}
	dump, err := n.Dump()
	if err != nil {
		return s, err
	}
	sum := sha256.Sum256(dump.Encode())
	s.ModelSHA256 = hex.EncodeToString(sum[:])
	return s, nil
}

func clipID(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

package projections

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"sort"

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

// HostDataView is one trusted host data value.
type HostDataView struct {
	HostData string `json:"host_data"`
	Format   string `json:"format"` // "sev-snp" or "virtual"
	// SecurityPolicy is the policy whose SHA-256 is the host data (SNP's,
	// when given); PolicyMatches says the digest was checked.
	SecurityPolicy string `json:"security_policy,omitempty"`
	PolicyMatches  bool   `json:"security_policy_matches"`
}

// Nodes reads the node read model: the node tables and the fold of the
// log they were folded with (nodes.Follower), and the primary's node id.
type Nodes struct {
	State   engine.StateReader
	Fold    *nodes.Fold
	Primary string
}

func (n Nodes) view(r nodes.Record) NodeView {
	data := r.NodeData
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	return NodeView{NodeID: r.NodeID, Status: r.Status, Role: r.Role, Address: r.Address, HostData: r.HostData,
		CodeVersion: r.CodeVersion, Primary: r.NodeID == n.Primary, RetiredCommitted: n.Fold.RetiredCommitted(r, n.Primary),
		NodeData: data, LastWritten: n.Fold.LastWritten(r.NodeID)}
}

// List is every node, optionally only those of a status or whose address
// has the host (or is the host:port) given.
func (n Nodes) List(status, host string) ([]NodeView, error) {
	recs, err := nodes.ReadAll(n.State)
	if err != nil {
		return nil, err
	}
	out := []NodeView{}
	for _, r := range recs {
		if status != "" && r.Status != status {
			continue
		}
		if host != "" {
			h, _, _ := net.SplitHostPort(r.Address)
			if host != h && host != r.Address {
				continue
			}
		}
		out = append(out, n.view(r))
	}
	return out, nil
}

// Get is one node (404 NodeNotFound when unknown or deleted).
func (n Nodes) Get(id string) (NodeView, error) {
	r, ok, err := nodes.ReadRecord(n.State, id)
	if err != nil {
		return NodeView{}, err
	}
	if !ok {
		return NodeView{}, engine.Errorf(engine.KindNotFound, nodes.CodeNodeNotFound, "no node %s", clipID(id))
	}
	return n.view(r), nil
}

// Removable is the nodes DELETE accepts: retired, the retirement committed.
func (n Nodes) Removable() ([]NodeView, error) {
	all, err := n.List(nodes.StatusRetired, "")
	if err != nil {
		return nil, err
	}
	out := []NodeView{}
	for _, v := range all {
		if v.RetiredCommitted {
			out = append(out, v)
		}
	}
	return out, nil
}

// TrustedHostData is the host data a node may join with without a
// transparent statement, each SNP security policy checked against its
// digest.
func (n Nodes) TrustedHostData() ([]HostDataView, error) {
	out := []HostDataView{}
	for table, format := range map[string]string{nodes.TableSNPHostData: "sev-snp", nodes.TableVirtualHostData: "virtual"} {
		err := n.State.Range(table, func(k string, v []byte) bool {
			var rec struct {
				SecurityPolicy string `json:"security_policy"`
			}
			_ = json.Unmarshal(v, &rec)
			hv := HostDataView{HostData: k, Format: format, SecurityPolicy: rec.SecurityPolicy}
			if rec.SecurityPolicy != "" {
				sum := sha256.Sum256([]byte(rec.SecurityPolicy))
				hv.PolicyMatches = hex.EncodeToString(sum[:]) == k
			}
			out = append(out, hv)
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Format != out[j].Format {
			return out[i].Format < out[j].Format
		}
		return out[i].HostData < out[j].HostData
	})
	return out, nil
}

// JoinPolicy is the join policy in force ("" and false: none).
func (n Nodes) JoinPolicy() (string, bool, error) {
	v, ok, err := n.State.Get(nodes.TableJoinPolicy, "")
	if err != nil || !ok {
		return "", false, err
	}
	var src string
	if err := json.Unmarshal(v, &src); err != nil {
		return "", false, engine.Wrap(engine.KindInternal, "CorruptJoinPolicy", err, "join policy")
	}
	return src, true, nil
}

// NodesSnapshot is the whole node read model, as `gavel projections
// rebuild` prints it and a test compares it with the live one.
type NodesSnapshot struct {
	Seqno           uint64         `json:"seqno"`
	Nodes           []NodeView     `json:"nodes"`
	Removable       []NodeView     `json:"removable_nodes"`
	TrustedHostData []HostDataView `json:"trusted_host_data"`
	JoinPolicy      *string        `json:"join_policy"`
}

// Snapshot reads every view at once.
func (n Nodes) Snapshot() (NodesSnapshot, error) {
	s := NodesSnapshot{Seqno: n.Fold.Seqno()}
	var err error
	if s.Nodes, err = n.List("", ""); err != nil {
		return s, err
	}
	if s.Removable, err = n.Removable(); err != nil {
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
	return s, nil
}

func clipID(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

package nodes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/gavelhq/gavel/engine"
)

// The node read model's tables. They live in the read model's own key
// space (beside the state's tables, never in a write set): Project folds
// applied entries into them, the node projections read them.
const (
	ModelNodes    = "nodes"                  // node id → ModelNode (JSON)
	ModelByStatus = "nodes.by_status"        // status "/" node id → ""
	ModelUnsigned = "nodes.retired_unsigned" // node id → "": retired, no signature entry covers it yet
	ModelSigned   = "nodes.retired_signed"   // node id → "": retired, a signature entry covers it
	ModelHostData = "host_data.trusted"      // format "/" host data → HostData (JSON)
	ModelPolicy   = "join_policy"            // "" → the join policy in force (a JSON string)
	ModelPosition = "nodes.position"         // "" → Position (JSON): the entries folded
)

// ModelTables are every table of the node read model.
var ModelTables = []string{ModelPolicy, ModelHostData, ModelNodes, ModelByStatus, ModelUnsigned, ModelSigned, ModelPosition}

// Attestation formats of trusted host data, as HostData names them.
const (
	FormatSNP     = "sev-snp"
	FormatVirtual = "virtual"
)

// ModelNode is a node as the read model keeps it: the node table's record
// as GET /node/network/nodes shows it, the seqno that last wrote it (CCF's
// last_written), and whether a signature entry covers its retirement.
type ModelNode struct {
	NodeID      string          `json:"node_id"`
	Status      string          `json:"status"`
	Role        string          `json:"role"`
	Address     string          `json:"address,omitempty"`
	HostData    string          `json:"host_data"`
	CodeVersion string          `json:"code_version"`
	NodeData    json.RawMessage `json:"node_data"`
	LastWritten uint64          `json:"last_written"`
	// RetirementSigned: Retired, and a signature entry after LastWritten.
	// Removable (retired_committed) unless the node is the primary.
	RetirementSigned bool `json:"retirement_signed"`
	// Unreadable says why the record did not decode (a constitution wrote
	// something that is not a node record); such a node has no status.
	Unreadable string `json:"unreadable,omitempty"`
}

// HostData is one trusted host data value. For SEV-SNP host data given
// with a security policy, PolicyMatches says SHA-256(policy) = host data.
type HostData struct {
	HostData       string `json:"host_data"`
	Format         string `json:"format"`
	SecurityPolicy string `json:"security_policy,omitempty"`
	PolicyMatches  bool   `json:"security_policy_matches"`
}

// Position is what the read model reflects: the last entry folded and the
// last signature entry among them.
type Position struct {
	Seqno         uint64 `json:"seqno"`
	LastSignature uint64 `json:"last_signature"`
}

// Projector folds applied entries into the node read model. It is pure
// (no I/O, no JavaScript: governance's effects are read from the write
// sets) and total: whatever an authenticated entry wrote, it folds. The
// live replica runs it in the state's apply batch, the auditor over
// memory (Fold), `gavel projections rebuild` over the log.
type Projector struct{}

// Project returns the read model's writes for entries, which follow the
// model's position: model is the read model before them.
func (Projector) Project(model engine.StateReader, entries []*engine.Entry) (engine.WriteSet, error) {
	f := &modelFold{base: model, overlay: map[string]map[string]*[]byte{}}
	pos, err := ReadPosition(model)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := f.entry(e, &pos); err != nil {
			return nil, err
		}
	}
	f.put(ModelPosition, "", mustJSON(pos))
	return f.writes(), nil
}

// Position is the last seqno the read model reflects (state.Projector).
func (Projector) Position(model engine.StateReader) (uint64, error) {
	p, err := ReadPosition(model)
	return p.Seqno, err
}

// ReadPosition reads the read model's position (zero: nothing folded).
func ReadPosition(model engine.StateReader) (Position, error) {
	var p Position
	v, ok, err := model.Get(ModelPosition, "")
	if err != nil || !ok {
		return p, err
	}
	if err := json.Unmarshal(v, &p); err != nil {
		return p, engine.Wrap(engine.KindInternal, "CorruptReadModel", err, "node read model position")
	}
	return p, nil
}

// modelFold is one Project call: the model before it, and what the
// entries so far changed (nil: deleted).
type modelFold struct {
	base    engine.StateReader
	overlay map[string]map[string]*[]byte
}

func (f *modelFold) get(table, key string) ([]byte, bool, error) {
	if v, ok := f.overlay[table][key]; ok {
		if v == nil {
			return nil, false, nil
		}
		return *v, true, nil
	}
	return f.base.Get(table, key)
}

func (f *modelFold) set(table, key string, v *[]byte) {
	if f.overlay[table] == nil {
		f.overlay[table] = map[string]*[]byte{}
	}
	f.overlay[table][key] = v
}

func (f *modelFold) put(table, key string, v []byte) { f.set(table, key, &v) }
func (f *modelFold) del(table, key string)           { f.set(table, key, nil) }

// keys lists table's keys as the fold sees them, in order.
func (f *modelFold) keys(table string) ([]string, error) {
	var out []string
	err := f.base.Range(table, func(k string, _ []byte) bool {
		if _, over := f.overlay[table][k]; !over {
			out = append(out, k)
		}
		return true
	})
	for k, v := range f.overlay[table] {
		if v != nil {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out, err
}

func (f *modelFold) writes() engine.WriteSet {
	var ws engine.WriteSet
	for table, kv := range f.overlay {
		for k, v := range kv {
			if v == nil {
				ws = append(ws, engine.Write{Table: table, Key: k, Delete: true})
			} else {
				ws = append(ws, engine.Write{Table: table, Key: k, Value: *v})
			}
		}
	}
	return ws.Canonical()
}

func (f *modelFold) entry(e *engine.Entry, pos *Position) error {
	if e.Seqno != pos.Seqno+1 {
		return fmt.Errorf("nodes: read model at %d cannot fold entry %d", pos.Seqno, e.Seqno)
	}
	pos.Seqno = e.Seqno
	if e.Kind == engine.KindSignature {
		pos.LastSignature = e.Seqno
		return f.signature(e.Seqno)
	}
	for _, w := range e.Writes {
		var err error
		switch w.Table {
		case engine.TableNodes:
			err = f.node(w, e.Seqno)
		case TableSNPHostData:
			f.hostData(FormatSNP, w)
		case TableVirtualHostData:
			f.hostData(FormatVirtual, w)
		case TableJoinPolicy:
			if w.Delete {
				f.del(ModelPolicy, "")
			} else {
				f.put(ModelPolicy, "", w.Value)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// signature marks the retirements written before the signature at seqno
// as covered by it (a signature at S signs the entries before S).
func (f *modelFold) signature(seqno uint64) error {
	ids, err := f.keys(ModelUnsigned)
	if err != nil {
		return err
	}
	for _, id := range ids {
		n, ok, err := f.modelNode(id)
		if err != nil {
			return err
		}
		if !ok || n.LastWritten >= seqno {
			continue
		}
		n.RetirementSigned = true
		f.put(ModelNodes, id, mustJSON(n))
		f.del(ModelUnsigned, id)
		f.put(ModelSigned, id, []byte{})
	}
	return nil
}

func (f *modelFold) modelNode(id string) (ModelNode, bool, error) {
	v, ok, err := f.get(ModelNodes, id)
	if err != nil || !ok {
		return ModelNode{}, false, err
	}
	var n ModelNode
	if err := json.Unmarshal(v, &n); err != nil {
		return n, false, engine.Wrap(engine.KindInternal, "CorruptReadModel", err, "node %s in the read model", clip(id))
	}
	return n, true, nil
}

// node folds a write of node id's record at seqno.
func (f *modelFold) node(w engine.Write, seqno uint64) error {
	old, ok, err := f.modelNode(w.Key)
	if err != nil {
		return err
	}
	if ok {
		f.del(ModelByStatus, old.Status+"/"+w.Key)
		f.del(ModelUnsigned, w.Key)
		f.del(ModelSigned, w.Key)
	}
	if w.Delete {
		f.del(ModelNodes, w.Key)
		return nil
	}
	n := ModelNode{NodeID: w.Key, LastWritten: seqno, NodeData: json.RawMessage("null")}
	var r Record
	if err := json.Unmarshal(w.Value, &r); err != nil {
		n.Unreadable = err.Error()
	} else {
		n.Status, n.Role, n.Address, n.HostData, n.CodeVersion = r.Status, r.Role, r.Address, r.HostData, r.CodeVersion
		if len(r.NodeData) > 0 {
			n.NodeData = r.NodeData
		}
	}
	f.put(ModelNodes, w.Key, mustJSON(n))
	if n.Unreadable == "" {
		f.put(ModelByStatus, n.Status+"/"+w.Key, []byte{})
	}
	if n.Status == StatusRetired {
		f.put(ModelUnsigned, w.Key, []byte{})
	}
	return nil
}

// hostData folds a write of trusted host data, checking an SNP security
// policy against its digest.
func (f *modelFold) hostData(format string, w engine.Write) {
	key := format + "/" + w.Key
	if w.Delete {
		f.del(ModelHostData, key)
		return
	}
	var rec struct {
		SecurityPolicy string `json:"security_policy"`
	}
	_ = json.Unmarshal(w.Value, &rec) // a value without a policy is trusted all the same
	h := HostData{HostData: w.Key, Format: format, SecurityPolicy: rec.SecurityPolicy}
	if rec.SecurityPolicy != "" {
		sum := sha256.Sum256([]byte(rec.SecurityPolicy))
		h.PolicyMatches = hex.EncodeToString(sum[:]) == w.Key
	}
	f.put(ModelHostData, key, mustJSON(h))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("nodes: read model value does not encode: " + err.Error())
	}
	return b
}

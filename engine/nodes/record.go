package nodes

import (
	"encoding/json"

	"github.com/gavelhq/gavel/engine"
)

// Node states, CCF's names.
const (
	StatusPending = "Pending"
	StatusTrusted = engine.NodeTrusted
	StatusRetired = "Retired"
)

// Record is a node's value in engine.TableNodes: engine.NodeRecord's
// fields and what the join recorded. Governance rewrites it as JSON and
// keeps the fields it does not know (valid_from, validity_period_days and
// retired_committed are the constitution's).
type Record struct {
	NodeID             string          `json:"node_id"`
	Status             string          `json:"status"`
	Role               string          `json:"role"`
	PublicKey          string          `json:"public_key"`
	Cert               string          `json:"cert,omitempty"`
	Address            string          `json:"address,omitempty"`
	CodeVersion        string          `json:"code_version,omitempty"`
	AttestationFormat  string          `json:"attestation_format,omitempty"`
	HostData           string          `json:"host_data,omitempty"`
	Measurement        string          `json:"measurement,omitempty"`
	JoinedBy           string          `json:"joined_by,omitempty"` // JoinedByHostData or JoinedByPolicy
	NodeData           json.RawMessage `json:"node_data,omitempty"`
	ValidFrom          string          `json:"valid_from,omitempty"`
	ValidityPeriodDays int             `json:"validity_period_days,omitempty"`
}

// How a node's code was admitted.
const (
	JoinedByHostData = "trusted_host_data"
	JoinedByPolicy   = "join_policy"
)

// ReadRecord reads node id's record.
func ReadRecord(st engine.StateReader, id string) (Record, bool, error) {
	v, ok, err := st.Get(engine.TableNodes, id)
	if err != nil || !ok {
		return Record{}, false, err
	}
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return Record{}, false, engine.Wrap(engine.KindInternal, "CorruptNodeRecord", err, "node %s", id)
	}
	return r, true, nil
}

// ReadAll reads every node record in node id order.
func ReadAll(st engine.StateReader) ([]Record, error) {
	var out []Record
	var bad error
	err := st.Range(engine.TableNodes, func(id string, v []byte) bool {
		var r Record
		if err := json.Unmarshal(v, &r); err != nil {
			bad = engine.Wrap(engine.KindInternal, "CorruptNodeRecord", err, "node %s", id)
			return false
		}
		out = append(out, r)
		return true
	})
	if err == nil {
		err = bad
	}
	return out, err
}

func (r Record) write() engine.Write {
	v, err := json.Marshal(r)
	if err != nil {
		panic("nodes: record does not encode: " + err.Error())
	}
	return engine.Write{Table: engine.TableNodes, Key: r.NodeID, Value: v}
}

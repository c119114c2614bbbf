package nodes

import (
	"encoding/json"

	"github.com/gavelhq/gavel/engine"
)

// Delete removes a retired node from the nodes table (CCF's DELETE
// /node/network/nodes/{id}). RetiredCommitted is the caller's fold
// (Fold.RetiredCommitted) at the request: the service's, re-derived by the
// auditor from the log.
type Delete struct {
	NodeID           string
	RetiredCommitted bool
}

// DeleteInput is a delete entry's input.
type DeleteInput struct {
	NodeID string `json:"node_id"`
}

// ParseDelete reads a delete entry's input.
func ParseDelete(input []byte) (string, error) {
	var in DeleteInput
	if err := json.Unmarshal(input, &in); err != nil || in.NodeID == "" {
		return "", engine.Errorf(engine.KindInvalid, "InvalidEntry", "node delete input is not {\"node_id\"}")
	}
	return in.NodeID, nil
}

func (d Delete) Kind() engine.EntryKind { return engine.KindNodeDelete }
func (d Delete) Input() []byte {
	b, _ := json.Marshal(DeleteInput{NodeID: d.NodeID})
	return b
}

// Execute deletes the node if it is retired and its retirement committed.
func (d Delete) Execute(st engine.StateReader, _ engine.Facts) (engine.Effect, error) {
	rec, ok, err := ReadRecord(st, d.NodeID)
	if err != nil {
		return engine.Effect{}, err
	}
	if !ok {
		return engine.Effect{}, engine.Errorf(engine.KindNotFound, CodeNodeNotFound, "no node %s", clip(d.NodeID))
	}
	if rec.Status != StatusRetired || !d.RetiredCommitted {
		return engine.Effect{}, engine.Errorf(engine.KindInvalid, CodeNodeNotRetiredCommitted,
			"node %s is %s and its retirement is not committed: it cannot be removed", d.NodeID, rec.Status)
	}
	return engine.Effect{Writes: engine.WriteSet{{Table: engine.TableNodes, Key: d.NodeID, Delete: true}}, Result: []byte("{}")}, nil
}

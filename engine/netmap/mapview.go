package netmap

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/gavelhq/gavel/engine"
)

// MapPayload is the network map's payload, DESIGN.md's field names.
type MapPayload struct {
	NodeInfoHashes        []string       `json:"node_info_hashes"`
	NetworkParametersHash string         `json:"network_parameters_hash"`
	ParametersUpdate      *UpdatePayload `json:"parameters_update"`
}

// UpdatePayload is the advertised update in the map.
type UpdatePayload struct {
	NewParametersHash string `json:"new_parameters_hash"`
	Description       string `json:"description"`
	UpdateDeadline    string `json:"update_deadline"`
}

// Encode is the payload's JSON: hashes sorted, fields in a fixed order.
func (m MapPayload) Encode() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic("netmap: map does not encode: " + err.Error())
	}
	return b
}

// InMap reports whether a node belongs in the map at asOf: Trusted in the
// directory (retired and deleted nodes leave), heard from within the event
// horizon, and following the parameters in force — it published under
// them, or it accepted them before their flag day (acceptedCurrent).
func InMap(n NodeState, rec NodeRecord, known bool, acceptedCurrent bool, cur Current, asOf time.Time) bool {
	if !known || rec.Status != StatusTrusted {
		return false
	}
	horizon := time.Duration(cur.EventHorizonSeconds) * time.Second
	if time.Duration(asOf.UnixMilli()-n.LastSeenMs)*time.Millisecond > horizon {
		return false
	}
	return n.Epoch >= cur.Epoch || acceptedCurrent
}

// Map computes the map payload from state as of asOf, which must be the
// time of the last entry applied (never a wall clock), so every replica
// and the auditor derive the same map. It reads the nodes seen within the
// event horizon through TableSeen, newest first, and stops at the first
// stale one: its cost is the live nodes', and a publish changes O(1) keys.
func Map(st engine.StateReader, dir NodeDirectory, asOf time.Time) (MapPayload, error) {
	x, err := BuildIndex(st, dir, asOf)
	if err != nil {
		return MapPayload{}, err
	}
	return x.Payload(), nil
}

// DueFlagDay is the primary's trigger: the flag-day command once the
// pending update's deadline is at or before now (the primary's clock; the
// command itself checks the entry's time).
func DueFlagDay(st engine.StateReader, now time.Time) (FlagDay, bool, error) {
	p, ok, err := LoadPending(st)
	if err != nil || !ok || now.UnixMilli() < p.DeadlineMs {
		return FlagDay{}, false, err
	}
	return FlagDay{Hash: p.NewParametersHash}, true, nil
}

// Acceptance splits the nodes that published a NodeInfo into those that
// accepted hash and those that have not, by node id (the read side of
// GET /network-map/acceptances).
func Acceptance(st engine.StateReader, hash string) (accepted, pending []string, err error) {
	var firstErr error
	err = st.Range(TableNodes, func(id string, _ []byte) bool {
		_, ok, err := st.Get(TableAcks, AckKey(hash, id))
		if err != nil {
			firstErr = err
			return false
		}
		if ok {
			accepted = append(accepted, id)
		} else {
			pending = append(pending, id)
		}
		return true
	})
	if err == nil {
		err = firstErr
	}
	return accepted, pending, err
}

// Acceptances lists the acceptances of a parameters hash, by node id.
func Acceptances(st engine.StateReader, hash string) ([]AckRecord, error) {
	var out []AckRecord
	var firstErr error
	err := st.Range(TableAcks, func(key string, v []byte) bool {
		if !strings.HasPrefix(key, hash+"/") {
			return true
		}
		var r AckRecord
		if err := json.Unmarshal(v, &r); err != nil {
			firstErr = err
			return false
		}
		out = append(out, r)
		return true
	})
	if err == nil {
		err = firstErr
	}
	return out, err
}

// Decode rebuilds the command of a network-map entry from its kind and
// input, as the auditor and followers do: NodeInfo and acknowledgement
// signatures are verified again against the directory.
func Decode(kind engine.EntryKind, input []byte, dir NodeDirectory, nodes DirectoryFunc, lim Limits) (engine.Command, error) {
	switch kind {
	case KindNodeInfo:
		v, err := VerifyNodeInfo(input, dir, lim)
		if err != nil {
			return nil, err
		}
		return Publish{Info: v, Nodes: nodes}, nil
	case KindNodeAck:
		v, err := VerifyAck(input, dir)
		if err != nil {
			return nil, err
		}
		return Ack{Ack: v, Nodes: nodes}, nil
	case KindFlagDay:
		return DecodeFlagDay(input)
	}
	return nil, engine.Errorf(engine.KindInvalid, "InvalidEntry", "%s is not a network-map entry", kind)
}

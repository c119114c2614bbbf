package netmap

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gavelhq/gavel/engine"
)

// Error codes of the commands. Where Corda's network map names the failure
// (OutdatedNetworkParameterHash) gavel uses its name.
const (
	CodeUnknownNode             = "UnknownNode"            // 401: no such node in the nodes table
	CodeNodeNotTrusted          = "NodeNotTrusted"         // 403: the node is not Trusted
	CodePlatformVersionTooLow   = "PlatformVersionTooLow"  // 403: below minimum_platform_version
	CodeLegalNameTaken          = "LegalNameTaken"         // 409: another node's key holds the name
	CodeNodeInfoSerialConflict  = "NodeInfoSerialConflict" // 409: another payload with the same serial
	CodeNodeInfoSerialTooLow    = "NodeInfoSerialTooLow"   // 409: a serial below the current one
	CodeOutdatedParametersHash  = "OutdatedNetworkParameterHash"
	CodeNoPendingUpdate         = "NoPendingParametersUpdate" // 409
	CodeFlagDayNotReached       = "FlagDayNotReached"         // 409: the entry's time is before the deadline
	CodeNoNetworkParameters     = "NoNetworkParameters"       // 503: genesis wrote none
	CodeNetworkParametersExist  = "NetworkParametersExist"    // 409: genesis parameters twice
	CodeInvalidParametersUpdate = "InvalidParametersUpdate"   // 400: set_network_parameters arguments
)

// NodeState is a node's current NodeInfo in TableNodes.
type NodeState struct {
	NodeID string `json:"node_id"`
	Hash   string `json:"hash"`
	Serial int64  `json:"serial"`
	// Names are the normalised legal names it holds.
	Names           []string `json:"names"`
	PlatformVersion int      `json:"platform_version"`
	// TxID wrote this hash; LastSeenMs is the time of its last publish.
	TxID       string `json:"txid"`
	LastSeenMs int64  `json:"last_seen_ms"`
	// Epoch is the parameters epoch in force at its last publish.
	Epoch int64 `json:"epoch"`
}

// Current is the parameters in force, in TableCurrent.
type Current struct {
	Hash   string `json:"hash"`
	Epoch  int64  `json:"epoch"`
	TxID   string `json:"txid"`
	TimeMs int64  `json:"time_ms"`
	// EventHorizonSeconds is copied from the parameters, so the map and
	// publish read one record.
	EventHorizonSeconds int64 `json:"event_horizon_seconds"`
	MinimumPlatform     int   `json:"minimum_platform_version"`
}

// Pending is the advertised update in TablePending. Its first three
// fields are the map payload's parameters_update.
type Pending struct {
	NewParametersHash string `json:"new_parameters_hash"`
	Description       string `json:"description"`
	UpdateDeadline    string `json:"update_deadline"`
	TxID              string `json:"txid"`
	DeadlineMs        int64  `json:"deadline_ms"`
}

// AckRecord is a node's acceptance in TableAcks.
type AckRecord struct {
	NodeID string `json:"node_id"`
	Hash   string `json:"hash"`
	TxID   string `json:"txid"`
	TimeMs int64  `json:"time_ms"`
}

// SeenKey is a node's key in TableSeen: the inverted time first, so keys
// ascend from the newest.
func SeenKey(ms int64, nodeID string) string {
	return fmt.Sprintf("%019d/%s", math.MaxInt64-ms, nodeID)
}

// ParseSeenKey inverts SeenKey.
func ParseSeenKey(k string) (ms int64, nodeID string, err error) {
	t, id, ok := strings.Cut(k, "/")
	inv, perr := strconv.ParseInt(t, 10, 64)
	if !ok || perr != nil || len(t) != 19 {
		return 0, "", fmt.Errorf("netmap: bad seen key %q", k)
	}
	return math.MaxInt64 - inv, id, nil
}

// SeenValue is a node's value in TableSeen: the epoch of its last publish
// and its NodeInfo hash, "<epoch>/<hash>".
func SeenValue(epoch int64, hash string) []byte {
	return []byte(strconv.FormatInt(epoch, 10) + "/" + hash)
}

// ParseSeenValue inverts SeenValue.
func ParseSeenValue(v []byte) (epoch int64, hash string, err error) {
	e, h, ok := strings.Cut(string(v), "/")
	epoch, perr := strconv.ParseInt(e, 10, 64)
	if !ok || perr != nil || !isLowerHex64(h) {
		return 0, "", fmt.Errorf("netmap: bad seen value %q", v)
	}
	return epoch, h, nil
}

// AckKey is an acceptance's key in TableAcks: ranged by hash.
func AckKey(hash, nodeID string) string { return hash + "/" + nodeID }

// EpochKey is an epoch's key in TableEpochs, in epoch order.
func EpochKey(epoch int64) string { return fmt.Sprintf("%019d", epoch) }

func getJSON[T any](st engine.StateReader, table, key string) (T, bool, error) {
	var v T
	b, ok, err := st.Get(table, key)
	if err != nil || !ok {
		return v, ok, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, false, fmt.Errorf("netmap: %s/%s: %w", table, key, err)
	}
	return v, true, nil
}

func put(table, key string, v any) engine.Write {
	b, err := json.Marshal(v)
	if err != nil {
		panic("netmap: record does not encode: " + err.Error())
	}
	return engine.Write{Table: table, Key: key, Value: b}
}

// LoadCurrent reads the parameters in force; CodeNoNetworkParameters when
// genesis wrote none.
func LoadCurrent(st engine.StateReader) (Current, error) {
	c, ok, err := getJSON[Current](st, TableCurrent, Singleton)
	if err != nil {
		return c, err
	}
	if !ok {
		return c, engine.Errorf(engine.KindUnavailable, CodeNoNetworkParameters, "the service has no network parameters")
	}
	return c, nil
}

// LoadPending reads the advertised update, if any.
func LoadPending(st engine.StateReader) (Pending, bool, error) {
	return getJSON[Pending](st, TablePending, Singleton)
}

// LoadNode reads a node's current NodeInfo state.
func LoadNode(st engine.StateReader, nodeID string) (NodeState, bool, error) {
	return getJSON[NodeState](st, TableNodes, nodeID)
}

// LoadParameters reads a parameters set by hash (canonical JSON and parsed).
func LoadParameters(st engine.StateReader, hash string) (NetworkParameters, []byte, bool, error) {
	b, ok, err := st.Get(TableParameters, hash)
	if err != nil || !ok {
		return NetworkParameters{}, nil, ok, err
	}
	lim := DefaultLimits()
	lim.MaxParametersBytes = len(b)
	p, err := ParseParameters(b, lim)
	if err != nil {
		return NetworkParameters{}, nil, false, fmt.Errorf("netmap: parameters %s: %w", hash, err)
	}
	return p, b, true, nil
}

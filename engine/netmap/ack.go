package netmap

import (
	"crypto"
	"encoding/json"
	"time"

	"github.com/gavelhq/gavel/engine"
)

// SignAck makes a node's acceptance of a parameters hash: a COSE_Sign1 by
// the node's key whose payload is the hash (64 lowercase hex characters).
func SignAck(node crypto.Signer, hash string) ([]byte, error) {
	return signEnvelope(node, MsgNodeAck, []byte(hash), true)
}

// VerifiedAck is an acceptance signed by the key its node id names.
type VerifiedAck struct {
	Raw    []byte
	NodeID string
	Hash   string
}

// VerifyAck checks an acceptance's structure and that it is signed by the
// key the nodes table holds for its node.
func VerifyAck(raw []byte, dir NodeDirectory) (VerifiedAck, error) {
	env, err := openEnvelope(raw, MsgNodeAck, CodeInvalidAck, true)
	if err != nil {
		return VerifiedAck{}, err
	}
	if !isLowerHex64(string(env.msg.Payload)) {
		return VerifiedAck{}, engine.Errorf(engine.KindInvalid, CodeInvalidAck, "the payload must be a parameters hash, 64 lowercase hex characters")
	}
	_, key, err := lookupNode(dir, env.nodeID)
	if err != nil {
		return VerifiedAck{}, err
	}
	if err := checkSameKey(key, env.key, env.nodeID); err != nil {
		return VerifiedAck{}, err
	}
	if err := env.verify(key); err != nil {
		return VerifiedAck{}, err
	}
	return VerifiedAck{Raw: raw, NodeID: env.nodeID, Hash: string(env.msg.Payload)}, nil
}

// Ack records a Trusted node's acceptance of the pending update. Only the
// latest pending hash can be accepted (else OutdatedNetworkParameterHash);
// an acceptance is irrevocable and accepting again writes nothing.
type Ack struct {
	Ack   VerifiedAck
	Nodes DirectoryFunc
}

// AckResult is the answer to an acceptance.
type AckResult struct {
	Hash string `json:"hash"`
	TxID string `json:"txid"` // the entry that recorded the acceptance
}

func (c Ack) Kind() engine.EntryKind { return KindNodeAck }
func (c Ack) Input() []byte          { return c.Ack.Raw }

func (c Ack) Execute(st engine.StateReader, f engine.Facts) (engine.Effect, error) {
	rec, _, err := lookupNode(directoryOf(c.Nodes, st), c.Ack.NodeID)
	if err != nil {
		return engine.Effect{}, err
	}
	if err := requireTrusted(rec); err != nil {
		return engine.Effect{}, err
	}
	p, ok, err := LoadPending(st)
	if err != nil {
		return engine.Effect{}, err
	}
	if !ok {
		return engine.Effect{}, engine.Errorf(engine.KindConflict, CodeOutdatedParametersHash, "%s is not the pending update: there is none", c.Ack.Hash)
	}
	if p.NewParametersHash != c.Ack.Hash {
		return engine.Effect{}, engine.Errorf(engine.KindConflict, CodeOutdatedParametersHash, "%s is not the pending update %s", c.Ack.Hash, p.NewParametersHash)
	}
	key := AckKey(c.Ack.Hash, c.Ack.NodeID)
	if prev, ok, err := getJSON[AckRecord](st, TableAcks, key); err != nil {
		return engine.Effect{}, err
	} else if ok {
		return replayed(AckResult{Hash: prev.Hash, TxID: prev.TxID})
	}
	r := AckRecord{NodeID: c.Ack.NodeID, Hash: c.Ack.Hash, TxID: f.TxID.String(), TimeMs: f.Time.UnixMilli()}
	return effect(engine.WriteSet{
		put(TableAcks, key, r),
		{Table: TableAccepted, Key: c.Ack.NodeID, Value: []byte(c.Ack.Hash)},
	}, AckResult{Hash: r.Hash, TxID: r.TxID})
}

// FlagDay brings the pending update into force. The primary appends it
// once its clock passes the deadline, naming the hash it saw pending; the
// check is against the entry's time, so an auditor re-derives it. The
// parameters' epoch and modified_time were fixed when the update was
// accepted, so the hash nodes accepted is the hash in force. Nodes that
// did not accept leave the map (Map) until they publish again; their
// NodeInfo and every earlier parameters set stay in their tables.
type FlagDay struct {
	Hash string `json:"new_parameters_hash"`
}

// FlagDayResult is the answer to a flag day.
type FlagDayResult struct {
	NetworkParametersHash string `json:"network_parameters_hash"`
	Epoch                 int64  `json:"epoch"`
	TxID                  string `json:"txid"`
}

// DecodeFlagDay reads a flag-day entry's input.
func DecodeFlagDay(input []byte) (FlagDay, error) {
	var c FlagDay
	if err := decodeStrict(input, &c); err != nil || !isLowerHex64(c.Hash) {
		return FlagDay{}, engine.Errorf(engine.KindInvalid, "InvalidFlagDay", "a flag day names the pending hash: {\"new_parameters_hash\": …}")
	}
	return c, nil
}

func (c FlagDay) Kind() engine.EntryKind { return KindFlagDay }
func (c FlagDay) Input() []byte {
	b, _ := json.Marshal(c)
	return b
}

func (c FlagDay) Execute(st engine.StateReader, f engine.Facts) (engine.Effect, error) {
	p, ok, err := LoadPending(st)
	if err != nil {
		return engine.Effect{}, err
	}
	if !ok {
		return engine.Effect{}, engine.Errorf(engine.KindConflict, CodeNoPendingUpdate, "there is no pending network parameters update")
	}
	if p.NewParametersHash != c.Hash {
		return engine.Effect{}, engine.Errorf(engine.KindConflict, CodeOutdatedParametersHash, "%s is not the pending update %s", c.Hash, p.NewParametersHash)
	}
	if f.Time.UnixMilli() < p.DeadlineMs {
		return engine.Effect{}, engine.Errorf(engine.KindConflict, CodeFlagDayNotReached,
			"the update's deadline is %s; the entry's time %s is before it", p.UpdateDeadline, f.Time.UTC().Format(time.RFC3339Nano))
	}
	params, _, ok, err := LoadParameters(st, p.NewParametersHash)
	if err != nil {
		return engine.Effect{}, err
	}
	if !ok {
		return engine.Effect{}, engine.Errorf(engine.KindInternal, "MissingParameters", "pending parameters %s are not stored", p.NewParametersHash)
	}
	cur := currentOf(params, p.NewParametersHash, f)
	return effect(engine.WriteSet{
		put(TableCurrent, Singleton, cur),
		{Table: TableEpochs, Key: EpochKey(params.Epoch), Value: []byte(p.NewParametersHash)},
		{Table: TablePending, Key: Singleton, Delete: true},
	}, FlagDayResult{NetworkParametersHash: cur.Hash, Epoch: cur.Epoch, TxID: cur.TxID})
}

func currentOf(p NetworkParameters, hash string, f engine.Facts) Current {
	return Current{Hash: hash, Epoch: p.Epoch, TxID: f.TxID.String(), TimeMs: f.Time.UnixMilli(),
		EventHorizonSeconds: int64(p.EventHorizon / time.Second), MinimumPlatform: p.MinimumPlatformVersion}
}

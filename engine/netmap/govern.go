package netmap

import (
	"encoding/json"
	"time"

	"github.com/gavelhq/gavel/engine"
)

// GenesisWrites are the writes that give a new service its first
// parameters (from serve's flags or a file): complete and valid, epoch and
// modified_time included, in force from the genesis entry.
func GenesisWrites(st engine.StateReader, p NetworkParameters, f engine.Facts, lim Limits) (engine.WriteSet, error) {
	if _, ok, err := st.Get(TableCurrent, Singleton); err != nil {
		return nil, err
	} else if ok {
		return nil, engine.Errorf(engine.KindConflict, CodeNetworkParametersExist, "the service already has network parameters")
	}
	p = p.normalized()
	if err := p.Validate(lim); err != nil {
		return nil, err
	}
	h := p.Hash()
	return engine.WriteSet{
		{Table: TableParameters, Key: h, Value: p.Canonical()},
		put(TableCurrent, Singleton, currentOf(p, h, f)),
		{Table: TableEpochs, Key: EpochKey(p.Epoch), Value: []byte(h)},
	}, nil
}

// SetParametersArgs are the arguments of set_network_parameters.
type SetParametersArgs struct {
	Parameters     json.RawMessage `json:"parameters"`
	Description    string          `json:"description"`
	UpdateDeadline string          `json:"update_deadline"` // RFC 3339 UTC
}

// ParsedUpdate is a set_network_parameters whose arguments parsed.
type ParsedUpdate struct {
	Parameters  NetworkParameters
	Description string
	Deadline    time.Time
	deadlineRaw string
	epochGiven  bool
}

func invalidUpdate(format string, args ...any) *engine.Error {
	return engine.Errorf(engine.KindInvalid, CodeInvalidParametersUpdate, format, args...)
}

// ParseSetParameters reads set_network_parameters' arguments strictly.
func ParseSetParameters(args []byte, lim Limits) (ParsedUpdate, error) {
	var a struct {
		Parameters     json.RawMessage `json:"parameters"`
		Description    *string         `json:"description"`
		UpdateDeadline *string         `json:"update_deadline"`
	}
	if err := decodeStrict(args, &a); err != nil {
		return ParsedUpdate{}, engine.Wrap(engine.KindInvalid, CodeInvalidParametersUpdate, err, "set_network_parameters arguments are not valid JSON of their schema")
	}
	switch {
	case len(a.Parameters) == 0 || string(a.Parameters) == "null":
		return ParsedUpdate{}, invalidUpdate("parameters is required.")
	case a.Description == nil:
		return ParsedUpdate{}, invalidUpdate("description is required.")
	case a.UpdateDeadline == nil:
		return ParsedUpdate{}, invalidUpdate("update_deadline is required.")
	}
	if len(*a.Description) > lim.MaxDescriptionBytes {
		return ParsedUpdate{}, invalidUpdate("description is %d bytes, the limit is %d.", len(*a.Description), lim.MaxDescriptionBytes)
	}
	deadline, err := parseUTC(*a.UpdateDeadline)
	if err != nil {
		return ParsedUpdate{}, invalidUpdate("update_deadline %v.", err)
	}
	p, err := ParseParameters(a.Parameters, lim)
	if err != nil {
		return ParsedUpdate{}, err
	}
	var probe struct {
		Epoch json.RawMessage `json:"epoch"`
	}
	_ = json.Unmarshal(a.Parameters, &probe)
	return ParsedUpdate{Parameters: p, Description: *a.Description, Deadline: deadline,
		deadlineRaw: *a.UpdateDeadline, epochGiven: len(probe.Epoch) > 0 && string(probe.Epoch) != "null"}, nil
}

// resolve fixes what the service owns — epoch = current + 1 and
// modified_time = the entry's time — and checks every rule against state
// at time now.
func (u ParsedUpdate) resolve(st engine.StateReader, now time.Time, lim Limits) (NetworkParameters, Current, error) {
	cur, err := LoadCurrent(st)
	if err != nil {
		return NetworkParameters{}, cur, err
	}
	if !u.Deadline.After(now) {
		return NetworkParameters{}, cur, invalidUpdate("update_deadline %s is not in the future (now is %s).",
			u.deadlineRaw, now.UTC().Format(time.RFC3339))
	}
	p := u.Parameters
	if u.epochGiven && p.Epoch != cur.Epoch+1 {
		return NetworkParameters{}, cur, invalidParams("epoch must be %d, the current epoch plus one, not %d.", cur.Epoch+1, p.Epoch)
	}
	p.Epoch = cur.Epoch + 1
	p.ModifiedTime = now.UTC()
	if err := p.Validate(lim); err != nil {
		return NetworkParameters{}, cur, err
	}
	return p, cur, nil
}

// Validate is set_network_parameters' validate step at proposal time.
func (u ParsedUpdate) Validate(st engine.StateReader, now time.Time, lim Limits) error {
	_, _, err := u.resolve(st, now, lim)
	return err
}

// Apply is the engine's part of an accepted set_network_parameters, run in
// the accepting entry: it stores the parameters (epoch and modified_time
// fixed now) and advertises them as the pending update, replacing a pending
// one. It returns the writes and the advertised update.
func (u ParsedUpdate) Apply(st engine.StateReader, f engine.Facts, lim Limits) (engine.WriteSet, Pending, error) {
	p, _, err := u.resolve(st, f.Time, lim)
	if err != nil {
		return nil, Pending{}, err
	}
	h := p.Hash()
	pend := Pending{NewParametersHash: h, Description: u.Description, UpdateDeadline: u.Deadline.Format(time.RFC3339Nano),
		TxID: f.TxID.String(), DeadlineMs: u.Deadline.UnixMilli()}
	return engine.WriteSet{
		{Table: TableParameters, Key: h, Value: p.Canonical()},
		put(TablePending, Singleton, pend),
	}, pend, nil
}

// ApplyCancelUpdate is the engine's part of an accepted
// cancel_network_parameters_update{}: the pending update is withdrawn (its
// parameters stay fetchable by hash). With none pending it is refused.
func ApplyCancelUpdate(st engine.StateReader) (engine.WriteSet, error) {
	if _, ok, err := LoadPending(st); err != nil {
		return nil, err
	} else if !ok {
		return nil, engine.Errorf(engine.KindConflict, CodeNoPendingUpdate, "there is no pending network parameters update to cancel")
	}
	return engine.WriteSet{{Table: TablePending, Key: Singleton, Delete: true}}, nil
}

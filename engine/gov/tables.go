package gov

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
)

// Tables the engine itself keeps. They sit outside "gov." so that no
// constitution can write them.
const (
	TableProposals     = "gavel.gov.proposals"      // proposal id → Proposal (JSON)
	TableOpenProposals = "gavel.gov.proposals.open" // proposal id → "" while Open
	TableRequests      = "gavel.gov.requests"       // content id → first answer (JSON)
	TableCounters      = "gavel.gov.counters"       // "open" → number of open proposals (decimal)
	// TableConstitutionDigest holds "" → SHA-256 of the constitution record,
	// written whenever the constitution is, so that finding the compiled
	// constitution costs a 32-byte read, not a parse of its source.
	TableConstitutionDigest = "gavel.gov.constitution_digest"
)

// Proposal states, with CCF's meaning.
const (
	StateOpen      = "Open"
	StateAccepted  = "Accepted"
	StateRejected  = "Rejected"
	StateWithdrawn = "Withdrawn"
	StateFailed    = "Failed"
	StateDropped   = "Dropped"
)

// Proposal is a proposal's record and, as JSON, CCF's answer to every
// request about it (Proposals.Proposal of api-version 2024-07-01).
// finalVotes, voteFailures and failure appear only when set.
type Proposal struct {
	ProposalID       string                 `json:"proposalId"`
	ProposerID       string                 `json:"proposerId"`
	State            string                 `json:"proposalState"`
	BallotCount      int                    `json:"ballotCount"`
	BallotSubmitters []string               `json:"ballotSubmitters"`
	FinalVotes       map[string]bool        `json:"finalVotes,omitempty"`
	VoteFailures     map[string]VoteFailure `json:"voteFailures,omitempty"`
	Failure          *Failure               `json:"failure,omitempty"`
	// CreatedTxID is where the proposal entered the ledger (not in CCF's
	// answer; kept in the record).
	CreatedTxID string `json:"-"`
	// Body is the proposal's payload ({"actions":[…]}), verbatim.
	Body string `json:"-"`
	// Ballots are the members' ballot scripts, re-run at every vote.
	Ballots map[string]string `json:"-"`
}

// VoteFailure is a ballot that threw or did not return a boolean
// (CCF's FailureInfo).
type VoteFailure struct {
	Reason string `json:"reason"`
}

// Failure says why a proposal Failed (CCF's FailureInfo).
type Failure struct {
	Reason string `json:"reason"`
}

// record is the stored form: the answer plus what only the engine reads.
type record struct {
	Proposal
	CreatedTxID string            `json:"created_txid"`
	Body        string            `json:"body"`
	Ballots     map[string]string `json:"ballots"`
}

// encode is the proposal's stored record. The record's decoded form is
// kept (decodedProposals): the next request on the proposal reads it back.
func (p *Proposal) encode() []byte {
	_, b := p.encodeBoth()
	return b
}

// encodeBoth is the proposal's answer and its record, which is the answer
// with the engine's fields added: json.Marshal of record writes the
// embedded Proposal's fields first, so one encoding serves both.
func (p *Proposal) encodeBoth() (answer, rec []byte) {
	answer, err := json.Marshal(p)
	if err != nil {
		panic("gov: proposal does not encode: " + err.Error())
	}
	txid, _ := json.Marshal(p.CreatedTxID)
	body, _ := json.Marshal(p.Body)
	ballots, err := json.Marshal(p.Ballots)
	if err != nil {
		panic("gov: proposal does not encode: " + err.Error())
	}
	rec = make([]byte, 0, len(answer)+len(txid)+len(body)+len(ballots)+40)
	rec = append(rec, answer[:len(answer)-1]...)
	rec = append(append(rec, `,"created_txid":`...), txid...)
	rec = append(append(rec, `,"body":`...), body...)
	rec = append(append(rec, `,"ballots":`...), ballots...)
	rec = append(rec, '}')
	keepDecoded(rec, p)
	return answer, rec
}

func loadProposal(st engine.StateReader, id string) (*Proposal, bool, error) {
	b, ok, err := st.Get(TableProposals, id)
	if err != nil || !ok {
		return nil, ok, err
	}
	if p, ok := decodedProposal(b); ok {
		return p, true, nil
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, false, fmt.Errorf("gov: proposal %s: %w", id, err)
	}
	p := r.Proposal
	p.CreatedTxID, p.Body, p.Ballots = r.CreatedTxID, r.Body, r.Ballots
	if p.Ballots == nil {
		p.Ballots = map[string]string{}
	}
	return &p, true, nil
}

// LoadProposal reads a proposal's record (for the read endpoints).
func LoadProposal(st engine.StateReader, id string) (*Proposal, bool, error) {
	return loadProposal(st, id)
}

// Member is a member's record in the constitution's members table, as
// the default constitution's set_member writes it (CCF's arguments).
type Member struct {
	MemberID         string          `json:"-"`
	Cert             string          `json:"cert"`
	Status           string          `json:"status"`
	MemberData       json.RawMessage `json:"member_data,omitempty"`
	EncryptionPubKey string          `json:"encryption_pub_key,omitempty"`
	RecoveryRole     string          `json:"recovery_role,omitempty"`
}

// LoadMember reads a member's record.
func LoadMember(st engine.StateReader, id string) (*Member, bool, error) {
	b, ok, err := st.Get(constitution.TableMembers, id)
	if err != nil || !ok {
		return nil, ok, err
	}
	m, ok := parsedMembers.get(b)
	if !ok {
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, false, fmt.Errorf("gov: member %s: %w", id, err)
		}
		parsedMembers.put(b, m)
	}
	m.MemberID = id
	m.MemberData = slices.Clone(m.MemberData)
	return &m, true, nil
}

var (
	parsedMembers parsedRecords[Member]
	parsedConfigs parsedRecords[Config]
)

// Config is the service configuration the engine reads (written at genesis
// and by set_service_configuration).
type Config struct {
	RecoveryThreshold     int `json:"recovery_threshold"`
	MaxActionsPerProposal int `json:"max_actions_per_proposal"`
	MaxOpenProposals      int `json:"max_open_proposals"`
	ReplayWindowSeconds   int `json:"replay_window_seconds"`
}

// DefaultConfig is the service configuration of a new service.
func DefaultConfig() Config {
	return Config{RecoveryThreshold: 1, MaxActionsPerProposal: 32, MaxOpenProposals: 1000, ReplayWindowSeconds: 300}
}

func loadConfig(st engine.StateReader) (Config, error) {
	c := DefaultConfig()
	b, ok, err := st.Get(constitution.TableServiceConfig, "")
	if err != nil || !ok {
		return c, err
	}
	if p, ok := parsedConfigs.get(b); ok {
		return p, nil
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("gov: service configuration: %w", err)
	}
	parsedConfigs.put(b, c)
	return c, nil
}

package handlers

import (
	"context"
	"encoding/json"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/projections"
)

// Service is what the handlers call: one small interface per domain. A
// replica implements them all.
type Service interface {
	Statements
	Node
	Nodes
	GovernanceWrites
	GovernanceReads
}

// Statements is the SCITT side: registration and receipts.
type Statements interface {
	// RegisterStatement checks a COSE signed statement and commits it; the
	// answer is the JSON registration result ({"txid": …}).
	RegisterStatement(ctx context.Context, statement []byte) ([]byte, error)
	// Receipt is the CCF COSE receipt of a committed entry (KindPending
	// while no signature covers it).
	Receipt(ctx context.Context, tx engine.TxID) ([]byte, error)
	// TransparentStatement is a registered statement with its receipt in
	// unprotected header 394.
	TransparentStatement(ctx context.Context, tx engine.TxID) ([]byte, error)
	// IsStatement reports whether tx is a committed statement entry.
	IsStatement(ctx context.Context, tx engine.TxID) (bool, error)
}

// Node is the service's own state: its network and its transactions.
type Node interface {
	// Network describes the service (certificate, view, last txid).
	Network(ctx context.Context) (NetworkInfo, error)
	// Committed is the last committed transaction: what every answer's
	// x-ms-ccf-transaction-id names unless it wrote one itself.
	Committed(ctx context.Context) (engine.TxID, error)
	// TransactionStatus is CCF's status of a transaction id (Unknown,
	// Pending, Committed, Invalid).
	TransactionStatus(ctx context.Context, tx engine.TxID) (string, error)
}

// GovernanceWrites takes members' signed requests.
type GovernanceWrites interface {
	// SubmitGov checks and commits a member's signed request of type typ;
	// proposalID and memberID are the route's ("" over NATS). The answer's
	// body is empty when CCF answers 204; its TxID is the entry's, or the
	// last committed one when nothing was written.
	SubmitGov(ctx context.Context, typ govreq.MsgType, proposalID, memberID string, raw []byte) (GovAnswer, error)
}

// GovAnswer is the answer to a governance write.
type GovAnswer struct {
	Body []byte
	TxID engine.TxID
}

// GovernanceReads are CCF's governance reads.
type GovernanceReads interface {
	Proposals(ctx context.Context, state string, page projections.Page) ([]*gov.Proposal, bool, error)
	Proposal(ctx context.Context, id string) (*gov.Proposal, error)
	Ballot(ctx context.Context, proposalID, memberID string) (string, error)
	Members(ctx context.Context, page projections.Page) ([]projections.Member, bool, error)
	Member(ctx context.Context, id string) (projections.Member, error)
	StateDigest(ctx context.Context, memberID string) (gov.StateDigest, error)
	ConstitutionSource(ctx context.Context) (string, error)
	ServiceInfo(ctx context.Context) (projections.ServiceInfo, error)
	JSApp(ctx context.Context) (projections.JSApp, error)
	JoinPolicies(ctx context.Context) (projections.JoinPolicies, error)
}

// NetworkInfo is the answer of GET /node/network.
type NetworkInfo struct {
	ServiceCertificate string `json:"service_certificate"`
	ServiceStatus      string `json:"service_status"`
	CurrentView        uint64 `json:"current_view"`
	LastTxID           string `json:"last_txid,omitempty"`
	LastSignedTxID     string `json:"last_signed_txid,omitempty"`
	CreateTxID         string `json:"current_service_create_txid,omitempty"`
	// CCF's fields: the primary's node id (the replica's: SHA-256 of the
	// service key's DER), how many recoveries the service had, and its
	// service data (none).
	PrimaryID     string          `json:"primary_id"`
	RecoveryCount int             `json:"recovery_count"`
	ServiceData   json.RawMessage `json:"service_data"`
}

// Limits are the handlers' named size limits.
type Limits struct {
	MaxStatementBytes int64 // POST /entries and gavel.submit.statement bodies
	MaxGovBytes       int64 // governance requests
}

// DefaultInFlight is how many NATS requests are served at once: enough
// for full atomic batches, few enough to bound memory.
const DefaultInFlight = 4096

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{MaxStatementBytes: 1 << 20, MaxGovBytes: govreq.DefaultMaxSize}
}

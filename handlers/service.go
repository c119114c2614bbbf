package handlers

import (
	"context"
	"encoding/json"
	"time"

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
	// StatementByClaimsDigest finds the latest committed registration of
	// the statement with that claims digest (false if there is none).
	StatementByClaimsDigest(ctx context.Context, d engine.Digest) (engine.TxID, bool, error)
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
	// HTTPConnections is the HTTP edge's load and refusals, where known.
	HTTPConnections *Stats `json:"http_connections,omitempty"`
	// VoidEntries counts the messages in the log that were not
	// authenticated entries (never applied), and names the last one.
	VoidEntries *VoidEntries `json:"void_entries,omitempty"`
	// Writable is false while writes are refused; WriteError says why.
	Writable   bool        `json:"writable"`
	WriteError *WriteError `json:"write_error,omitempty"`
	// Cluster is how a replica joins a clustered service (gavel serve
	// --join); absent on a single-replica service.
	Cluster *ClusterInfo `json:"cluster,omitempty"`
}

// ClusterInfo is what a joining replica needs to route to the service's
// JetStream cluster: its name, the routes of the answering replica and of
// every Trusted replica, and the public nkeys of their NATS users by kind
// (a joiner's server admits them, so every server accepts every replica's
// users).
type ClusterInfo struct {
	Name      string              `json:"name"`
	Routes    []string            `json:"routes"`
	NATSUsers map[string][]string `json:"nats_users"`
}

// VoidEntries reports the void entries of the log.
type VoidEntries struct {
	Count      uint64 `json:"count"`
	LastSeqno  uint64 `json:"last_seqno"`
	LastReason string `json:"last_reason"`
}

// WriteError is why a replica refuses writes: a stable code
// (StorageFull, TooManyOpenFiles, SignerFailed, SequencerStopped…), a
// message and when it began. Writes meanwhile answer 503 with the same code.
type WriteError struct {
	Code    string    `json:"code"`
	Message string    `json:"message"`
	Since   time.Time `json:"since"`
}

// Limits are the handlers' named size limits.
type Limits struct {
	MaxStatementBytes int64 // POST /entries and gavel.submit.statement bodies
	MaxGovBytes       int64 // governance requests
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{MaxStatementBytes: 1 << 20, MaxGovBytes: govreq.DefaultMaxSize}
}

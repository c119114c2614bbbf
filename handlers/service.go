package handlers

import (
	"context"
	"time"

	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"

	"github.com/gavelhq/gavel/engine"
)

// Service is what the handlers call. A replica implements it.
type Service interface {
	// RegisterStatement checks a COSE signed statement and commits it; the
	// answer is the JSON registration result ({"txid": …}).
	RegisterStatement(ctx context.Context, statement []byte) ([]byte, error)
	// Receipt is the CCF COSE receipt of a committed entry.
	Receipt(ctx context.Context, tx engine.TxID) ([]byte, error)
	// TransparentStatement is a registered statement with its receipt in
	// unprotected header 394.
	TransparentStatement(ctx context.Context, tx engine.TxID) ([]byte, error)
	// Network describes the service (certificate, view, last txid).
	Network(ctx context.Context) (NetworkInfo, error)

	// SubmitGov checks and commits a member's signed proposal, ballot or
	// withdrawal; proposalID and memberID are the route's ("" over NATS).
	SubmitGov(ctx context.Context, typ govreq.MsgType, proposalID, memberID string, raw []byte) ([]byte, error)
	Proposals(ctx context.Context, state string) ([]*gov.Proposal, error)
	Proposal(ctx context.Context, id string) (*gov.Proposal, error)
	Members(ctx context.Context) ([]*gov.Member, error)
	ConstitutionSource(ctx context.Context) (string, error)
	ServiceInfo(ctx context.Context) (map[string]any, error)
}

// NetworkInfo is the answer of GET /node/network.
type NetworkInfo struct {
	ServiceCertificate string `json:"service_certificate"`
	ServiceStatus      string `json:"service_status"`
	CurrentView        uint64 `json:"current_view"`
	LastTxID           string `json:"last_txid,omitempty"`
	LastSignedTxID     string `json:"last_signed_txid,omitempty"`
	CreateTxID         string `json:"current_service_create_txid,omitempty"`
	// Writable is false while writes are refused; WriteError says why.
	Writable   bool        `json:"writable"`
	WriteError *WriteError `json:"write_error,omitempty"`
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

// DefaultInFlight is how many NATS requests are served at once: enough
// for full atomic batches, few enough to bound memory.
const DefaultInFlight = 4096

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{MaxStatementBytes: 1 << 20, MaxGovBytes: govreq.DefaultMaxSize}
}

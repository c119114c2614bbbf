package exec

import (
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
)

// VerifiedStatement is a signed statement whose structure, did:x509 issuer
// and signature have been checked (by cose.VerifyStatement).
type VerifiedStatement struct {
	Raw          []byte
	ClaimsDigest engine.Digest
	Issuer       string
	Subject      string
}

// VerifyStatement parses and checks a signed statement — structure, did:x509
// issuer at its iat (or at now), signature — and returns its registration.
// The service runs it before sequencing; auditors run it again at each
// entry's time.
func VerifyStatement(raw []byte, now time.Time) (RegisterStatement, error) {
	st, err := cose.ParseStatement(raw)
	if err != nil {
		return RegisterStatement{}, err
	}
	if err := cose.VerifyStatement(st, now); err != nil {
		return RegisterStatement{}, err
	}
	return RegisterStatement{Statement: VerifiedStatement{Raw: raw, ClaimsDigest: st.ClaimsDigest(), Issuer: st.Issuer, Subject: st.Subject}}, nil
}

// RegisterStatement registers a verified statement. It writes the issuer
// and subject under the statement's claims digest; the statement itself is
// the entry's input.
type RegisterStatement struct{ Statement VerifiedStatement }

func (c RegisterStatement) Kind() engine.EntryKind { return engine.KindStatement }
func (c RegisterStatement) Input() []byte          { return c.Statement.Raw }

// RegistrationResult is the answer to a registration.
type RegistrationResult struct {
	TxID string `json:"txid"`
}

func (c RegisterStatement) Execute(_ engine.StateReader, f engine.Facts) (engine.Effect, error) {
	rec, err := engine.CBOR.Marshal(engine.StatementRecord{Issuer: c.Statement.Issuer, Subject: c.Statement.Subject})
	if err != nil {
		return engine.Effect{}, err
	}
	result, err := json.Marshal(RegistrationResult{TxID: f.TxID.String()})
	if err != nil {
		return engine.Effect{}, err
	}
	return engine.Effect{
		Writes: engine.WriteSet{{
			Table: engine.TableStatements,
			Key:   hex.EncodeToString(c.Statement.ClaimsDigest[:]),
			Value: rec,
		}},
		ClaimsDigest: c.Statement.ClaimsDigest,
		Result:       result,
	}, nil
}

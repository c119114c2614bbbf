package replica

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
)

// A planned primary change is asked for by the primary's operator: a
// COSE_Sign1 (alg EdDSA) by the primary's own node key over
// {"successor": node id, "created_at": unix seconds}. CCF has no such
// request; gavel takes it at POST /node/primary/stepdown.

// StepdownRequest is the signed payload.
type StepdownRequest struct {
	Successor string `json:"successor"`
	CreatedAt int64  `json:"created_at"`
}

// stepdownWindow is how far created_at may be from the primary's clock.
const stepdownWindow = 5 * time.Minute

// MaxStepdownBytes bounds a stepdown request.
const MaxStepdownBytes = 4 << 10

// SignStepdown makes the request that hands the lease of the primary
// whose node key is key to successor.
func SignStepdown(key ed25519.PrivateKey, successor string, at time.Time) ([]byte, error) {
	payload, err := json.Marshal(StepdownRequest{Successor: successor, CreatedAt: at.Unix()})
	if err != nil {
		return nil, err
	}
	alg, err := cbor.Marshal(int64(cose.EdDSA))
	if err != nil {
		return nil, err
	}
	phdr := cose.Header{}
	phdr.Set(int64(1), alg)
	protected, err := phdr.Encode()
	if err != nil {
		return nil, err
	}
	sig, err := cose.Sign(key, cose.EdDSA, protected, payload)
	if err != nil {
		return nil, err
	}
	m := cose.Sign1{Protected: protected, Unprotected: cose.Header{}, Payload: payload, Signature: sig}
	return m.Encode()
}

// StepDownSigned checks a signed stepdown request (this replica's node key,
// a fresh created_at), then steps down to its successor (StepDown).
func (r *Replica) StepDownSigned(ctx context.Context, raw []byte) error {
	m, err := cose.DecodeSign1(raw)
	if err != nil {
		return err
	}
	h, err := m.ProtectedHeader()
	if err != nil {
		return err
	}
	if alg, ok, err := h.Int(int64(1)); err != nil || !ok || cose.Algorithm(alg) != cose.EdDSA {
		return engine.Errorf(engine.KindInvalid, cose.CodeUnsupportedAlgorithm, "a stepdown request is signed with EdDSA by the primary's node key")
	}
	if err := cose.VerifySignature(cose.EdDSA, r.node.Key.Public(), m.Protected, m.Payload, m.Signature); err != nil {
		return engine.Errorf(engine.KindUnauthorized, "InvalidNodeSignature", "the stepdown request is not signed by this replica's node key (%s)", r.node.ID)
	}
	var req StepdownRequest
	if err := json.Unmarshal(m.Payload, &req); err != nil {
		return engine.Wrap(engine.KindInvalid, "MalformedStepdown", err, "the stepdown payload is not {successor, created_at}")
	}
	if d := r.cfg.Now().Sub(time.Unix(req.CreatedAt, 0)); d > stepdownWindow || d < -stepdownWindow {
		return engine.Errorf(engine.KindInvalid, "StepdownCreatedTooLongAgo", "created_at is %v away from this replica's clock (at most %v)", d.Round(time.Second), stepdownWindow)
	}
	return r.StepDown(ctx, req.Successor)
}

// LoadNodeIdentity reads a replica's node key from its data folder; unlike
// LoadOrCreateNodeIdentity it never makes one.
func LoadNodeIdentity(dir string) (*NodeIdentity, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, NodeCertFile))
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, nodeKeyFile))
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	return parseNodeIdentity(certPEM, keyPEM)
}

package replica

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"runtime/debug"
	"sync"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/nodes"
	"github.com/gavelhq/gavel/handlers"
	"github.com/gavelhq/gavel/projections"
)

// nodeReads is the node read model: a nodes.Follower over the ledger
// stream, caught up with the applied state on each read.
type nodeReads struct {
	mu       sync.Mutex
	follower *nodes.Follower
}

// errFolded stops a Range at the last applied seqno.
var errFolded = errors.New("folded up to the applied state")

// Nodes is the node read model as of the last applied entry.
func (r *Replica) Nodes(ctx context.Context) (projections.Nodes, func(), error) {
	nr := &r.nodeReads
	nr.mu.Lock()
	if nr.follower == nil {
		nr.follower = nodes.NewFollower()
	}
	f := nr.follower
	target := r.Store().Meta().Seqno
	if f.Fold.Seqno() < target {
		err := r.log.Range(ctx, f.Fold.Seqno()+1, func(m engine.LedgerMsg) error {
			if m.Seq > target {
				return errFolded
			}
			f.Add(m)
			if m.Seq == target {
				return errFolded
			}
			return nil
		})
		if err != nil && !errors.Is(err, errFolded) {
			nr.mu.Unlock()
			return projections.Nodes{}, nil, engine.Wrap(engine.KindUnavailable, "LogUnavailable", err, "the node read model cannot follow the log")
		}
	}
	return projections.Nodes{State: f.State, Fold: f.Fold, Primary: r.node.ID}, nr.mu.Unlock, nil
}

// nodeSettings is what genesis fixed about attestation.
func (r *Replica) nodeSettings() (nodes.Settings, error) {
	var s nodes.Settings
	v, ok, err := r.Store().Get(engine.TableService, exec.KeyServiceSettings)
	if err != nil {
		return s, err
	}
	var g exec.ServiceSettings
	if ok {
		if err := json.Unmarshal(v, &g); err != nil {
			return s, engine.Wrap(engine.KindInternal, "CorruptSettings", err, "service settings")
		}
	}
	return nodes.SettingsFrom(g.Virtual, g.DevSNPRoot, r.identity.CertPEM)
}

// JoinNode verifies a node's signed join request, then commits it (a new
// node becomes Pending) or answers its poll; a Trusted node's answer
// carries its service-endorsed certificate.
func (r *Replica) JoinNode(ctx context.Context, raw []byte) ([]byte, error) {
	s, err := r.nodeSettings()
	if err != nil {
		return nil, err
	}
	select {
	case r.verifySlots <- struct{}{}:
	case <-ctx.Done():
		return nil, engine.Wrap(engine.KindUnavailable, "Timeout", ctx.Err(), "no verification slot before the deadline")
	}
	j, err := nodes.VerifyJoin(raw, s, r.cfg.Now(), r.cfg.ScriptLimits)
	<-r.verifySlots
	if err != nil {
		return nil, err
	}
	out, err := r.submit(ctx, j)
	if err != nil {
		return nil, err
	}
	var res nodes.JoinResult
	if err := json.Unmarshal(out.Result, &res); err != nil {
		return nil, engine.Wrap(engine.KindInternal, "BadJoinResult", err, "join result")
	}
	answer := JoinAnswer{JoinResult: res}
	if res.NodeStatus == nodes.StatusTrusted {
		rec, ok, err := nodes.ReadRecord(r.Store(), res.NodeID)
		if err != nil {
			return nil, err
		}
		if ok {
			cert, err := r.endorse(rec, j.Signed.PublicKey)
			if err != nil {
				return nil, err
			}
			answer.NodeCertificate = string(cert)
			if answer.SealedServiceKey, err = r.sealServiceKey(rec); err != nil {
				return nil, err
			}
		}
	}
	return json.Marshal(answer)
}

// endorse issues a Trusted node's certificate, signed by the service
// identity, valid from the record's valid_from for validity_period_days
// (CCF's transition_node_to_trusted arguments). It is issued on each poll
// from the ledger's record: the same subject, serial and validity each
// time.
func (r *Replica) endorse(rec nodes.Record, pub any) ([]byte, error) {
	from, err := ParseValidFrom(rec.ValidFrom)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "BadValidFrom", err, "node %s", rec.NodeID)
	}
	days := rec.ValidityPeriodDays
	if days <= 0 {
		days = DefaultNodeValidityDays
	}
	sum := sha256.Sum256([]byte(rec.NodeID))
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(sum[:16]),
		Subject:      pkix.Name{CommonName: "gavel node " + rec.NodeID},
		NotBefore:    from,
		NotAfter:     from.AddDate(0, 0, days).Add(-time.Second),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	key, ok := r.identity.Key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, engine.Errorf(engine.KindInternal, "BadServiceKey", "the service key is not ECDSA")
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.identity.Cert, pub, key)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "EndorsementFailed", err, "node %s", rec.NodeID)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// DefaultNodeValidityDays is CCF's default node certificate validity.
const DefaultNodeValidityDays = 365

// ParseValidFrom reads valid_from in the forms CCF's tools send: X.509
// UTCTime (220101120000Z), GeneralizedTime (20220101120000Z) or ISO 8601.
func ParseValidFrom(s string) (time.Time, error) {
	for _, layout := range []string{"060102150405Z", "20060102150405Z", time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("valid_from %q is neither an X.509 time nor ISO 8601", s)
}

// DeleteNode deletes a retired node whose retirement a signature covers.
func (r *Replica) DeleteNode(ctx context.Context, id string) error {
	view, unlock, err := r.Nodes(ctx)
	if err != nil {
		return err
	}
	committed := false
	if rec, ok, err := nodes.ReadRecord(view.State, id); err != nil {
		unlock()
		return err
	} else if ok {
		// A retired replica's server leaves the JetStream cluster first.
		committed = view.Fold.RetiredCommitted(rec, view.Primary) && r.serverRemoved(rec)
	}
	unlock()
	_, err = r.submit(ctx, nodes.Delete{NodeID: id, RetiredCommitted: committed})
	return err
}

// NodeList, NodeInfo and RemovableNodes are the node read model's views.
func (r *Replica) NodeList(ctx context.Context, status, host string) ([]projections.NodeView, error) {
	v, unlock, err := r.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return v.List(status, host)
}

func (r *Replica) NodeInfo(ctx context.Context, id string) (projections.NodeView, error) {
	v, unlock, err := r.Nodes(ctx)
	if err != nil {
		return projections.NodeView{}, err
	}
	defer unlock()
	return v.Get(id)
}

func (r *Replica) RemovableNodes(ctx context.Context) ([]projections.NodeView, error) {
	v, unlock, err := r.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	all, err := v.Removable()
	if err != nil {
		return nil, err
	}
	// A retired replica is removable once its server left the cluster.
	out := all[:0]
	for _, n := range all {
		if r.serverRemoved(nodes.Record{NodeID: n.NodeID, Role: n.Role}) {
			out = append(out, n)
		}
	}
	return out, nil
}

// NodesSnapshot is the whole node read model.
func (r *Replica) NodesSnapshot(ctx context.Context) (projections.NodesSnapshot, error) {
	v, unlock, err := r.Nodes(ctx)
	if err != nil {
		return projections.NodesSnapshot{}, err
	}
	defer unlock()
	return v.Snapshot()
}

// Version is GET /node/version.
func (r *Replica) Version(ctx context.Context) (handlers.VersionInfo, error) {
	s, err := r.nodeSettings()
	if err != nil {
		return handlers.VersionInfo{}, err
	}
	v := handlers.VersionInfo{GavelVersion: "unknown", GojaVersion: "unknown", Unsafe: s.Virtual || len(s.Roots) > 0,
		Virtual: s.Virtual, DevSNPRoot: len(s.Roots) > 0}
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Version != "" {
			v.GavelVersion = info.Main.Version
		}
		for _, d := range info.Deps {
			if d.Path == "github.com/dop251/goja" {
				v.GojaVersion = d.Version
			}
		}
	}
	v.CodeVersion = v.GavelVersion
	return v, nil
}

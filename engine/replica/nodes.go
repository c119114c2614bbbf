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
	"fmt"
	"math/big"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/nodes"
	"github.com/gavelhq/gavel/engine/state"
	"github.com/gavelhq/gavel/handlers"
	"github.com/gavelhq/gavel/projections"
)

// withNodes runs fn on the node read model and the state of one pebble
// snapshot, under the restart lock for the whole read: a restart waits
// for it, and every view fn reads is of the same applied seqno.
func (r *Replica) withNodes(fn func(v projections.Nodes, st engine.StateReader) error) error {
	st, done, err := r.reading()
	defer done()
	if err != nil {
		return err
	}
	sn, err := st.Snapshot()
	if err != nil {
		return engine.Wrap(engine.KindUnavailable, CodeStateFailed, err, "the state cannot be read")
	}
	defer sn.Close()
	return fn(projections.Nodes{Model: sn.Model(), Primary: r.PrimaryID()}, sn)
}

// nodeSettings is what genesis fixed about attestation.
func (r *Replica) nodeSettings() (nodes.Settings, error) {
	var s nodes.Settings
	v, err := read(r, func(st *state.Store) ([]byte, error) {
		v, _, err := st.Get(engine.TableService, exec.KeyServiceSettings)
		return v, err
	})
	if err != nil {
		return s, err
	}
	ok := v != nil
	var g exec.ServiceSettings
	if ok {
		if err := json.Unmarshal(v, &g); err != nil {
			return s, engine.Wrap(engine.KindInternal, "CorruptSettings", err, "service settings")
		}
	}
	return nodes.SettingsFrom(g.Virtual, g.DevSNPRoot, r.identity.CertPEM)
}

// joinNode verifies a node's signed join request, then commits it (a new
// node becomes Pending) or answers its poll; a Trusted node's answer
// carries its service-endorsed certificate.
func (r *Replica) joinNode(ctx context.Context, raw []byte) (forwardAnswer, error) {
	s, err := r.nodeSettings()
	if err != nil {
		return forwardAnswer{}, err
	}
	select {
	case r.verifySlots <- struct{}{}:
	case <-ctx.Done():
		return forwardAnswer{}, engine.Wrap(engine.KindUnavailable, "Timeout", ctx.Err(), "no verification slot before the deadline")
	}
	j, err := nodes.VerifyJoin(raw, s, r.cfg.Now(), r.cfg.ScriptLimits)
	<-r.verifySlots
	if err != nil {
		return forwardAnswer{}, err
	}
	out, err := r.submit(ctx, j)
	if err != nil {
		return forwardAnswer{}, err
	}
	var res nodes.JoinResult
	if err := json.Unmarshal(out.Result, &res); err != nil {
		return forwardAnswer{}, engine.Wrap(engine.KindInternal, "BadJoinResult", err, "join result")
	}
	answer := JoinAnswer{JoinResult: res}
	if res.NodeStatus == nodes.StatusTrusted {
		var rec nodes.Record
		var ok bool
		err := r.withNodes(func(_ projections.Nodes, st engine.StateReader) (err error) {
			rec, ok, err = nodes.ReadRecord(st, res.NodeID)
			return err
		})
		if err != nil {
			return forwardAnswer{}, err
		}
		if ok {
			cert, err := r.endorse(rec, j.Signed.PublicKey)
			if err != nil {
				return forwardAnswer{}, err
			}
			answer.NodeCertificate = string(cert)
			if answer.SealedServiceKey, err = r.sealServiceKey(rec); err != nil {
				return forwardAnswer{}, err
			}
		}
	}
	b, err := json.Marshal(answer)
	return forwardAnswer{Body: b, TxID: out.TxID}, err
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

// deleteNode deletes a retired node whose retirement a signature covers.
// A retired replica's server leaves the JetStream cluster first; the
// replica a client asked may have seen it leave a moment before this one
// (each server learns it from the meta group), so that is waited for
// briefly.
func (r *Replica) deleteNode(ctx context.Context, id string) (forwardAnswer, error) {
	var committed bool
	for wait := time.Now().Add(serverRemovalWait); ; {
		if err := r.withNodes(func(v projections.Nodes, st engine.StateReader) error {
			if committed = v.RetiredCommitted(id); !committed {
				return nil
			}
			rec, ok, err := nodes.ReadRecord(st, id)
			committed = err == nil && ok && r.serverRemoved(rec)
			return err
		}); err != nil {
			return forwardAnswer{}, err
		}
		if committed || time.Now().After(wait) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return answerOf(r.submit(ctx, nodes.Delete{NodeID: id, RetiredCommitted: committed}))
}

// serverRemovalWait bounds deleteNode's wait for this replica's server to
// see a retired replica's server leave the cluster.
const serverRemovalWait = 3 * time.Second

// NodeList, NodeInfo and RemovableNodes are the node read model's views,
// each of one snapshot.
func (r *Replica) NodeList(_ context.Context, status, host string, page projections.Page) (list []projections.NodeView, more bool, err error) {
	err = r.withNodes(func(v projections.Nodes, _ engine.StateReader) error {
		list, more, err = v.List(status, host, page)
		return err
	})
	return list, more, err
}

func (r *Replica) NodeInfo(_ context.Context, id string) (n projections.NodeView, err error) {
	err = r.withNodes(func(v projections.Nodes, _ engine.StateReader) error {
		n, err = v.Get(id)
		return err
	})
	return n, err
}

// RemovableNodes lists retired nodes whose retirement a signature covers
// and, for a retired replica, whose server has left the JetStream cluster
// (a page may then hold fewer than its limit).
func (r *Replica) RemovableNodes(_ context.Context, page projections.Page) (list []projections.NodeView, more bool, err error) {
	err = r.withNodes(func(v projections.Nodes, _ engine.StateReader) error {
		all, m, err := v.Removable(page)
		list, more = all[:0], m
		for _, n := range all {
			if r.serverRemoved(nodes.Record{NodeID: n.NodeID, Role: n.Role}) {
				list = append(list, n)
			}
		}
		return err
	})
	return list, more, err
}

// NodesSnapshot is the whole node read model, of one snapshot.
func (r *Replica) NodesSnapshot(_ context.Context) (s projections.NodesSnapshot, err error) {
	err = r.withNodes(func(v projections.Nodes, _ engine.StateReader) error {
		s, err = v.Snapshot()
		return err
	})
	return s, err
}

// NodesModel is every key of the node read model, of one snapshot (what a
// rebuild must reproduce byte for byte), with the seqno it reflects.
func (r *Replica) NodesModel() (dump engine.WriteSet, seqno uint64, err error) {
	err = r.withNodes(func(v projections.Nodes, _ engine.StateReader) error {
		p, err := nodes.ReadPosition(v.Model)
		seqno = p.Seqno
		if err == nil {
			dump, err = v.Dump()
		}
		return err
	})
	return dump, seqno, err
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

// openState opens the replica's state with the node read model folded in
// each apply batch (nodes.Projector): the read model always reflects the
// state's seqno, and catch-up refolds it from the log when it does not.
func openState(dataDir string) (*state.Store, error) {
	st, err := state.Open(filepath.Join(dataDir, "state"))
	if err != nil {
		return nil, err
	}
	st.SetProjector(nodes.Projector{})
	return st, nil
}

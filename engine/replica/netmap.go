package replica

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/engine/state"
	"github.com/gavelhq/gavel/handlers"
)

// NetmapConfig are the network map's settings.
type NetmapConfig struct {
	// Genesis: the first parameters (nil: netmap.DefaultParameters), the
	// limits (nil: netmap.DefaultLimits) and further Trusted nodes.
	Parameters *netmap.NetworkParameters
	Limits     *netmap.Limits
	Nodes      []engine.NodeRecord
	// MaxAge is GET /network-map's Cache-Control max-age (0: 60 s).
	MaxAge time.Duration
	// Tick is how often the primary looks for a due flag day and a changed
	// map or update to publish on the feeds (0: 1 s).
	Tick time.Duration
	// FeedConn publishes the feeds (nil: the feed publisher's connection).
	FeedConn *nats.Conn
}

// Network-map key files in the data folder, beside the service identity.
const (
	MapCertFile = "network_map_cert.pem"
	mapKeyFile  = "network_map_key.pem"
)

// mapIdentity is the network-map key and its certificate, issued by the
// service identity: x5chain = [map cert, service cert].
type mapIdentity struct {
	key     crypto.Signer
	cert    *x509.Certificate
	certPEM []byte
	chain   [][]byte
}

// loadOrCreateMapIdentity reads the network-map key from dir, creating a
// P-256 key and a certificate issued by id on first start.
func loadOrCreateMapIdentity(dir string, id *Identity, now time.Time) (*mapIdentity, error) {
	certPath, keyPath := filepath.Join(dir, MapCertFile), filepath.Join(dir, mapKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		if certPEM, err = CreateMapIdentity(dir, id, now); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("network-map key: %w", err)
	}
	cert, err := parseIdentityCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("network-map certificate: %w", err)
	}
	if err := cert.CheckSignatureFrom(id.Cert); err != nil {
		return nil, fmt.Errorf("%s is not issued by the service identity: %w", MapCertFile, err)
	}
	k, err := parsePrivateKey("network-map key", keyPEM)
	if err != nil {
		return nil, err
	}
	signer, ok := k.(*ecdsa.PrivateKey)
	if !ok || !signer.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("network-map key does not match its certificate")
	}
	return &mapIdentity{key: signer, cert: cert, certPEM: certPEM, chain: [][]byte{cert.Raw, id.Cert.Raw}}, nil
}

// CreateMapIdentity makes the network-map key and certificate in dir,
// issued by the service identity id, and returns the certificate PEM
// (gavel bootstrap makes them before the service starts, to sign the
// network-parameters files it hands to nodes).
func CreateMapIdentity(dir string, id *Identity, now time.Time) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:  pkix.Name{CommonName: "gavel network map"},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	certPEM, _, err := issueKeyFiles(filepath.Join(dir, mapKeyFile), filepath.Join(dir, MapCertFile), key, tmpl, id.Cert, id.Key, now)
	if err != nil {
		return nil, err
	}
	return certPEM, nil
}

// LoadMapSigner reads the network-map key that CreateMapIdentity wrote.
func LoadMapSigner(dir string) (crypto.Signer, error) {
	id, err := LoadOrCreateIdentity(dir, time.Now())
	if err != nil {
		return nil, err
	}
	m, err := loadOrCreateMapIdentity(dir, id, time.Now())
	if err != nil {
		return nil, err
	}
	return m.key, nil
}

// netmapSide is the replica's network-map read side: the map index and
// the signed map, brought up to date on a read after entries were applied
// and re-signed only when the payload changed, and signed parameters by
// hash.
type netmapSide struct {
	cfg    NetmapConfig
	id     *mapIdentity
	signer *netmap.MapSigner

	mu     sync.Mutex
	seqno  uint64           // the last applied entry the index and signed are at
	tip    engine.TxID      // that entry's txid
	index  *netmap.MapIndex // the map as of seqno
	signed netmap.SignedMap
	params map[string][]byte // hash → signed parameters

	// Node feeds: the nodes whose place changed since the feed publisher
	// last looked (all of them after a rebuild or when too many).
	nodesDirty map[string]struct{}
	nodesAll   bool

	// What the feeds last published, per feed and per node (feeds.go):
	// the feed publisher's goroutine alone uses them.
	fedParams, fedMap string
	fedNodes          map[string]nodeFed
}

// maxDirtyNodes bounds the changed nodes remembered for the node feeds;
// beyond it the publisher compares every node.
const maxDirtyNodes = 4096

func (r *Replica) netmapGenesis() (*exec.NetworkMapGenesis, []engine.NodeRecord) {
	p := netmap.DefaultParameters()
	if r.cfg.Netmap.Parameters != nil {
		p = *r.cfg.Netmap.Parameters
	}
	lim := netmap.DefaultLimits()
	if r.cfg.Netmap.Limits != nil {
		lim = *r.cfg.Netmap.Limits
	}
	return &exec.NetworkMapGenesis{Parameters: p, Limits: lim, CertPEM: r.nm.id.certPEM}, r.cfg.Netmap.Nodes
}

func (r *Replica) openNetmap() error {
	id, err := loadOrCreateMapIdentity(r.cfg.DataDir, r.identity, r.cfg.Now())
	if err != nil {
		return fmt.Errorf("network-map identity: %w", err)
	}
	cfg := r.cfg.Netmap
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = time.Minute
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	signer, err := netmap.NewMapSigner(id.key, id.chain)
	if err != nil {
		return fmt.Errorf("network-map signer: %w", err)
	}
	r.nm = &netmapSide{cfg: cfg, id: id, signer: signer, params: map[string][]byte{}, nodesDirty: map[string]struct{}{}, nodesAll: true}
	return nil
}

// directory is the nodes table of st, as the map reads it.
func directory(st engine.StateReader) netmap.NodeDirectory {
	return netmap.TableDirectory{State: st, Table: netmap.NodesDirectoryTable}
}

// MapCertificate is the network-map key's certificate (PEM).
func (r *Replica) MapCertificate() []byte { return r.nm.id.certPEM }

// publishNodeInfo verifies a signed NodeInfo against the node's recorded
// key and the service's limits, then commits it.
func (r *Replica) publishNodeInfo(ctx context.Context, raw []byte) (forwardAnswer, error) {
	v, err := withSlot(ctx, r, func() (netmap.VerifiedNodeInfo, error) {
		return read(r, func(st *state.Store) (netmap.VerifiedNodeInfo, error) {
			lim, err := netmap.LoadLimits(st)
			if err != nil {
				return netmap.VerifiedNodeInfo{}, err
			}
			return netmap.VerifyNodeInfo(raw, directory(st), lim)
		})
	})
	if err != nil {
		return forwardAnswer{}, err
	}
	return answerOf(r.submit(ctx, netmap.Publish{Info: v}))
}

// ackParameters verifies a node's acceptance, then commits it.
func (r *Replica) ackParameters(ctx context.Context, raw []byte) (forwardAnswer, error) {
	v, err := withSlot(ctx, r, func() (netmap.VerifiedAck, error) {
		return read(r, func(st *state.Store) (netmap.VerifiedAck, error) { return netmap.VerifyAck(raw, directory(st)) })
	})
	if err != nil {
		return forwardAnswer{}, err
	}
	return answerOf(r.submit(ctx, netmap.Ack{Ack: v}))
}

func withSlot[T any](ctx context.Context, r *Replica, f func() (T, error)) (T, error) {
	select {
	case r.verifySlots <- struct{}{}:
	case <-ctx.Done():
		var zero T
		return zero, engine.Wrap(engine.KindUnavailable, "Timeout", ctx.Err(), "no verification slot before the deadline")
	}
	defer func() { <-r.verifySlots }()
	return f()
}

// SignedMap is the network map as of the last applied entry: computed
// again only when an entry was applied since, re-signed only when its
// payload changed. The whole read holds one store (a restart waits).
func (r *Replica) SignedMap(ctx context.Context) (handlers.SignedMap, error) {
	st, done, err := r.reading()
	if err != nil {
		return handlers.SignedMap{}, err
	}
	defer done()
	nm := r.nm
	nm.mu.Lock()
	defer nm.mu.Unlock()
	if err := r.refreshMap(ctx, st); err != nil {
		return handlers.SignedMap{}, err
	}
	return handlers.SignedMap{Body: nm.signed.Body, ETag: nm.signed.ETag, MaxAge: nm.cfg.MaxAge}, nil
}

// refreshMap brings the index and the signed map to st's last applied
// entry. Called with nm.mu held and st read-locked.
//
// Meta is read before the tables, and the store commits an entry's tables
// before its Meta, so the tables may be one apply ahead of meta: the
// index then folds those entries again at the next read, which the fold
// allows (a publish's writes folded twice leave the node where once does).
func (r *Replica) refreshMap(ctx context.Context, st *state.Store) error {
	nm := r.nm
	meta := st.Meta()
	if nm.signed.Body != nil && meta.Seqno == nm.seqno {
		return nil
	}
	dir := directory(st)
	rebuilt := false
	if !r.advanceIndex(ctx, st, dir, meta.Seqno) {
		x, err := netmap.BuildIndex(st, dir, time.UnixMilli(meta.TimeMillis))
		if err != nil {
			return err
		}
		nm.index, rebuilt = x, true
	}
	changed := nm.index.TakeChanged()
	nm.noteNodes(changed, rebuilt)
	if rebuilt || len(changed) > 0 || nm.signed.Body == nil {
		m, err := nm.signer.Sign(nm.index)
		if err != nil {
			return err
		}
		if m.ETag != nm.signed.ETag {
			nm.signed = m // the same payload keeps the bytes already served
		}
	}
	nm.seqno, nm.tip = meta.Seqno, engine.TxID{View: meta.View, Seqno: meta.Seqno}
	return nil
}

// noteNodes remembers the nodes whose place changed, for the node feeds.
func (nm *netmapSide) noteNodes(ids []string, all bool) {
	if all || nm.nodesAll || len(nm.nodesDirty)+len(ids) > maxDirtyNodes {
		nm.nodesAll = true
		clear(nm.nodesDirty)
		return
	}
	for _, id := range ids {
		nm.nodesDirty[id] = struct{}{}
	}
}

// maxIndexSteps bounds how many entries the index folds before a full
// rebuild is cheaper than reading them back from the log.
const maxIndexSteps = 256

// rangeFrom is the fewest entries read back with one ranged read (batched
// direct gets) instead of one get each.
const rangeFrom = 4

// errIndexed stops a ranged read of the log once the index is folded up to
// the applied state; errRebuild stops it when only a rebuild can be right.
var (
	errIndexed = errors.New("the map index reached the applied state")
	errRebuild = errors.New("the map index must be rebuilt")
)

// advanceIndex folds the entries after the index's seqno up to seqno into
// it; false when it must be rebuilt instead. Called with nm.mu held.
func (r *Replica) advanceIndex(ctx context.Context, st *state.Store, dir netmap.NodeDirectory, seqno uint64) bool {
	nm := r.nm
	if nm.index == nil || seqno < nm.seqno || seqno-nm.seqno > maxIndexSteps {
		return false
	}
	fold := func(e *engine.Entry) bool {
		ok, err := nm.index.Apply(st, dir, e.Writes, e.Time())
		return err == nil && ok
	}
	if seqno-nm.seqno < rangeFrom {
		for s := nm.seqno + 1; s <= seqno; s++ {
			e, err := r.log.Entry(ctx, s)
			if err != nil || !fold(e) {
				return false
			}
		}
		return true
	}
	next := nm.seqno + 1
	err := r.log.Range(ctx, next, func(m engine.LedgerMsg) error {
		if m.Seq != next {
			return errRebuild // not the entry the state applied next
		}
		e, err := engine.DecodeEntry(m.Data)
		if err != nil || !fold(e) {
			return errRebuild
		}
		if next++; m.Seq == seqno {
			return errIndexed
		}
		return nil
	})
	return errors.Is(err, errIndexed)
}

// NodeInfoByHash is a signed NodeInfo by hash, current or not.
func (r *Replica) NodeInfoByHash(ctx context.Context, hash string) ([]byte, error) {
	return read(r, func(st *state.Store) ([]byte, error) { return nodeInfoByHash(st, hash) })
}

func nodeInfoByHash(st engine.StateReader, hash string) ([]byte, error) {
	b, ok, err := st.Get(netmap.TableNodeInfos, hash)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, engine.Errorf(engine.KindNotFound, "NodeInfoNotFound", "no NodeInfo with hash %s", hash)
	}
	return b, nil
}

// NodeInfos are the signed NodeInfos of the nodes in the map, read from
// the same store as the map they are listed by.
func (r *Replica) NodeInfos(ctx context.Context) ([]handlers.HashedBytes, error) {
	st, done, err := r.reading()
	if err != nil {
		return nil, err
	}
	defer done()
	r.nm.mu.Lock()
	err = r.refreshMap(ctx, st)
	var hashes []string
	if err == nil {
		hashes = r.nm.index.Payload().NodeInfoHashes
	}
	r.nm.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := make([]handlers.HashedBytes, 0, len(hashes))
	for _, h := range hashes {
		b, err := nodeInfoByHash(st, h)
		if err != nil {
			return nil, err
		}
		out = append(out, handlers.HashedBytes{Hash: h, Signed: b})
	}
	return out, nil
}

// SignedParameters are a parameters set the network ever had or was
// offered, signed by the network-map key.
func (r *Replica) SignedParameters(ctx context.Context, hash string) ([]byte, error) {
	r.nm.mu.Lock()
	b, ok := r.nm.params[hash]
	r.nm.mu.Unlock()
	if ok {
		return b, nil
	}
	p, err := read(r, func(st *state.Store) (netmap.NetworkParameters, error) {
		p, _, ok, err := netmap.LoadParameters(st, hash)
		if err == nil && !ok {
			err = engine.Errorf(engine.KindNotFound, "NetworkParametersNotFound", "no network parameters with hash %s", hash)
		}
		return p, err
	})
	if err != nil {
		return nil, err
	}
	b, err = netmap.SignParameters(r.nm.id.key, p)
	if err != nil {
		return nil, err
	}
	r.nm.mu.Lock()
	r.nm.params[hash] = b
	r.nm.mu.Unlock()
	return b, nil
}

// Acceptances lists who accepted a parameters hash ("" : the pending
// update, else the parameters in force) and who has not.
func (r *Replica) Acceptances(ctx context.Context, hash string) (handlers.Acceptances, error) {
	return read(r, func(st *state.Store) (handlers.Acceptances, error) { return acceptances(st, hash) })
}

func acceptances(st engine.StateReader, hash string) (handlers.Acceptances, error) {
	if hash == "" {
		p, ok, err := netmap.LoadPending(st)
		if err != nil {
			return handlers.Acceptances{}, err
		}
		if ok {
			hash = p.NewParametersHash
		} else {
			cur, err := netmap.LoadCurrent(st)
			if err != nil {
				return handlers.Acceptances{}, err
			}
			hash = cur.Hash
		}
	}
	acks, err := netmap.Acceptances(st, hash)
	if err != nil {
		return handlers.Acceptances{}, err
	}
	_, pending, err := netmap.Acceptance(st, hash)
	if err != nil {
		return handlers.Acceptances{}, err
	}
	a := handlers.Acceptances{Hash: hash, Accepted: []handlers.Accepted{}, Pending: pending}
	if a.Pending == nil {
		a.Pending = []string{}
	}
	for _, k := range acks {
		a.Accepted = append(a.Accepted, handlers.Accepted{NodeID: k.NodeID, TxID: k.TxID})
	}
	return a, nil
}

// runNetmap is the primary's network-map loop: the flag day once the
// pending update's deadline passes, and the feeds.
func (r *Replica) runNetmap(ctx context.Context) {
	t := time.NewTicker(r.nm.cfg.Tick)
	defer t.Stop()
	for {
		r.netmapTick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Replica) netmapTick(ctx context.Context) {
	if !r.IsPrimary() {
		return // the primary's job
	}
	st, done, err := r.reading()
	if err != nil {
		return // restarting: the write fault says why; the next tick retries
	}
	fd, due, err := netmap.DueFlagDay(st, r.cfg.Now())
	done()
	if err != nil {
		r.logger.Error("flag day check", slog.Any("err", err))
	} else if due {
		out, err := r.submit(ctx, fd)
		switch {
		case err == nil:
			r.logger.Info("flag day", slog.String("hash", fd.Hash), slog.String("txid", out.TxID.String()))
		case ctx.Err() == nil:
			r.logger.Warn("flag day refused", slog.Any("err", err))
		}
	}
	if err := r.publishFeeds(ctx); err != nil && ctx.Err() == nil {
		r.logger.Warn("feeds", slog.Any("err", err))
	}
}

// startNetmap starts the primary's network-map loop, publishing the feeds
// on cfg.Netmap.FeedConn (the feed publisher's connection when nil: the
// only NATS user that may write the feeds).
func (r *Replica) startNetmap(ctx context.Context) error {
	nc := r.cfg.Netmap.FeedConn
	if nc == nil {
		nc = r.feedsConn
	}
	f, err := newFeeds(nc)
	if err != nil {
		return err
	}
	r.feeds = f
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.runNetmap(ctx)
	}()
	return nil
}

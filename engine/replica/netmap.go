package replica

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
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
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("network-map key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("network-map key: %w", err)
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

// netmapSide is the replica's network-map read side: the signed map
// cached until an entry changes it, and signed parameters by hash.
type netmapSide struct {
	cfg NetmapConfig
	id  *mapIdentity

	mu      sync.Mutex
	seqno   uint64 // the last applied entry the cache was checked at
	payload []byte
	signed  []byte
	etag    string
	params  map[string][]byte // hash → signed parameters
	index   *netmap.MapIndex  // the map as of seqno

	// feeds: what was last published.
	fedParams, fedMap string
}

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
	r.nm = &netmapSide{cfg: cfg, id: id, params: map[string][]byte{}}
	return nil
}

func (r *Replica) directory() netmap.NodeDirectory {
	return netmap.TableDirectory{State: r.Store(), Table: netmap.NodesDirectoryTable}
}

// MapCertificate is the network-map key's certificate (PEM).
func (r *Replica) MapCertificate() []byte { return r.nm.id.certPEM }

// publishNodeInfo verifies a signed NodeInfo against the node's recorded
// key and the service's limits, then commits it.
func (r *Replica) publishNodeInfo(ctx context.Context, raw []byte) (forwardAnswer, error) {
	lim, err := netmap.LoadLimits(r.Store())
	if err != nil {
		return forwardAnswer{}, err
	}
	v, err := withSlot(ctx, r, func() (netmap.VerifiedNodeInfo, error) { return netmap.VerifyNodeInfo(raw, r.directory(), lim) })
	if err != nil {
		return forwardAnswer{}, err
	}
	return answerOf(r.submit(ctx, netmap.Publish{Info: v}))
}

// ackParameters verifies a node's acceptance, then commits it.
func (r *Replica) ackParameters(ctx context.Context, raw []byte) (forwardAnswer, error) {
	v, err := withSlot(ctx, r, func() (netmap.VerifiedAck, error) { return netmap.VerifyAck(raw, r.directory()) })
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
// payload changed.
func (r *Replica) SignedMap(ctx context.Context) (handlers.SignedMap, error) {
	nm := r.nm
	meta := r.Store().Meta()
	nm.mu.Lock()
	defer nm.mu.Unlock()
	if nm.signed == nil || meta.Seqno != nm.seqno {
		if !r.advanceIndex(ctx, meta.Seqno) {
			x, err := netmap.BuildIndex(r.Store(), r.directory(), time.UnixMilli(meta.TimeMillis))
			if err != nil {
				return handlers.SignedMap{}, err
			}
			nm.index = x
		}
		payload := nm.index.Payload().Encode()
		if !bytes.Equal(payload, nm.payload) {
			signed, err := netmap.SignMap(nm.id.key, nm.id.chain, payload)
			if err != nil {
				return handlers.SignedMap{}, err
			}
			sum := sha256.Sum256(payload)
			nm.payload, nm.signed, nm.etag = payload, signed, hex.EncodeToString(sum[:])
		}
		nm.seqno = meta.Seqno
	}
	return handlers.SignedMap{Body: nm.signed, ETag: nm.etag, MaxAge: nm.cfg.MaxAge}, nil
}

// maxIndexSteps bounds how many entries the index folds before a full
// rebuild is cheaper than reading them back from the log.
const maxIndexSteps = 256

// advanceIndex folds the entries after the index's seqno up to seqno into
// it; false when it must be rebuilt instead. Called with nm.mu held.
func (r *Replica) advanceIndex(ctx context.Context, seqno uint64) bool {
	nm := r.nm
	if nm.index == nil || seqno < nm.seqno || seqno-nm.seqno > maxIndexSteps {
		return false
	}
	for s := nm.seqno + 1; s <= seqno; s++ {
		e, err := r.log.Entry(ctx, s)
		if err != nil {
			return false
		}
		if ok, err := nm.index.Apply(r.Store(), r.directory(), e.Writes, e.Time()); err != nil || !ok {
			return false
		}
	}
	return true
}

// NodeInfoByHash is a signed NodeInfo by hash, current or not.
func (r *Replica) NodeInfoByHash(ctx context.Context, hash string) ([]byte, error) {
	b, ok, err := r.Store().Get(netmap.TableNodeInfos, hash)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, engine.Errorf(engine.KindNotFound, "NodeInfoNotFound", "no NodeInfo with hash %s", hash)
	}
	return b, nil
}

// NodeInfos are the signed NodeInfos of the nodes in the map.
func (r *Replica) NodeInfos(ctx context.Context) ([]handlers.HashedBytes, error) {
	if _, err := r.SignedMap(ctx); err != nil {
		return nil, err
	}
	r.nm.mu.Lock()
	payload := r.nm.payload
	r.nm.mu.Unlock()
	var m netmap.MapPayload
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, err
	}
	out := make([]handlers.HashedBytes, 0, len(m.NodeInfoHashes))
	for _, h := range m.NodeInfoHashes {
		b, err := r.NodeInfoByHash(ctx, h)
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
	p, _, ok, err := netmap.LoadParameters(r.Store(), hash)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, engine.Errorf(engine.KindNotFound, "NetworkParametersNotFound", "no network parameters with hash %s", hash)
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
	if hash == "" {
		p, ok, err := netmap.LoadPending(r.Store())
		if err != nil {
			return handlers.Acceptances{}, err
		}
		if ok {
			hash = p.NewParametersHash
		} else {
			cur, err := netmap.LoadCurrent(r.Store())
			if err != nil {
				return handlers.Acceptances{}, err
			}
			hash = cur.Hash
		}
	}
	acks, err := netmap.Acceptances(r.Store(), hash)
	if err != nil {
		return handlers.Acceptances{}, err
	}
	_, pending, err := netmap.Acceptance(r.Store(), hash)
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

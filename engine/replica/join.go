package replica

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/nodes"
	"github.com/gavelhq/gavel/nodeagent"
)

// JoinConfig configures a replica that joins a running clustered service
// (gavel serve --join URL).
type JoinConfig struct {
	URL        string // any replica's HTTP address
	DataDir    string
	NATSListen string
	Cluster    ClusterConfig // Listen, CodeVersion, limits; Routes and Name come from URL
	// Address is the node's address in its join (its HTTP listener); its
	// route's host:port if empty.
	Address string
	Logger  *slog.Logger
	// Lock is the data folder's lock when the caller took it; nil: Join
	// takes it. The Joiner owns it.
	Lock *DirLock
	// HTTPClient talks to URL; http.DefaultClient if nil.
	HTTPClient *http.Client
}

// Errors of a join, each refused before anything changes in the service.
var (
	ErrNotAGavelService = errors.New("not a gavel service")
	ErrNotClustered     = errors.New("the service is not clustered: its first replica was started without --cluster")
	ErrOtherService     = errors.New("the data folder belongs to another service")
)

// Joiner is a replica that has joined a service as a service node: its
// embedded server is one of the cluster's, with a Pending node's rights
// (it writes nothing), and it serves nothing until Trusted.
type Joiner struct {
	cfg      JoinConfig
	logger   *slog.Logger
	lock     *DirLock
	node     *NodeIdentity
	embedded *natslog.Embedded
	cluster  *clusterNATS
	client   *client.Client
	signed   []byte // the join request, sent again to poll
	sealPriv *[32]byte
	service  client.NetworkInfo
	stopPins chan struct{} // ends followPins
	pinsDone chan struct{} // closed once it has ended

	// NodeID and Status are the node's id and its status in the last answer.
	NodeID, Status string
}

// sealKeyFile holds the X25519 key the service identity is sealed to, so
// a Pending joiner that restarts can still open it.
const sealKeyFile = "seal_privk.bin"

// Join discovers the service at cfg.URL, sends the node's join (naming
// the server and route it will have) and, once the service has the node,
// starts the embedded server routed to its cluster (a fresh server name,
// tagged with the code version, equal limits), whose routes the service's
// servers then admit; it returns once the meta leader counts the server,
// with the node Pending (or Trusted, on a restart).
func Join(ctx context.Context, cfg JoinConfig) (_ *Joiner, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NATSListen == "" {
		cfg.NATSListen = natslog.DefaultListen
	}
	lock := cfg.Lock
	if lock == nil {
		if lock, err = LockDir(cfg.DataDir, "gavel replica", true); err != nil {
			return nil, err
		}
	}
	j := &Joiner{cfg: cfg, logger: cfg.Logger, lock: lock}
	defer func() {
		if err != nil {
			j.Close()
		}
	}()
	hc := cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	j.client = client.New(cfg.URL, client.WithHTTPClient(hc))
	if j.service, err = discover(ctx, j.client, cfg.URL); err != nil {
		return nil, err
	}
	if err := checkServiceData(cfg.DataDir, j.service.ServiceCertificate); err != nil {
		return nil, err
	}
	if err := CheckListen("nats", cfg.NATSListen); err != nil {
		return nil, err
	}
	if j.node, err = LoadOrCreateNodeIdentity(cfg.DataDir, time.Now()); err != nil {
		return nil, fmt.Errorf("node identity: %w", err)
	}
	if j.sealPriv, err = loadOrCreateSealKey(cfg.DataDir); err != nil {
		return nil, err
	}
	cc := cfg.Cluster
	cc.Name, cc.Routes, cc.Witness = j.service.Cluster.Name, j.service.Cluster.Routes[:1], false
	if cc.Listen == "" {
		cc.Listen = "127.0.0.1:6222"
	}
	if cc.Listen, err = resolveRouteListen(cfg.DataDir, cc.Listen); err != nil {
		return nil, fmt.Errorf("route listener: %w", err)
	}
	seeds, err := natslog.LoadOrCreateSeeds(filepath.Join(cfg.DataDir, "nats"))
	if err != nil {
		return nil, err
	}
	pins, _, err := servicePins(ctx, j.client, j.node.ID)
	if err != nil {
		return nil, fmt.Errorf("the service's nodes: %w", err)
	}
	// The join goes before the server routes: every refusal comes before
	// anything changes in the service, and once the node is Pending the
	// service's servers admit its key on their routes (routeauth.go).
	if j.signed, err = j.joinRequest(ServerName(j.node.ID), routeURL(cc.Listen), seeds); err != nil {
		return nil, err
	}
	j.logger.Info("joining", slog.String("service", cfg.URL), slog.String("node_id", j.node.ID), slog.String("seed", cc.Routes[0]))
	if err := j.poll(ctx); err != nil {
		return nil, err
	}
	peerKeys := map[natslog.User][]string{}
	for u, ks := range j.service.Cluster.NATSUsers {
		peerKeys[natslog.User(u)] = ks
	}
	base := natslog.EmbeddedConfig{DataDir: filepath.Join(cfg.DataDir, "nats"), Listen: cfg.NATSListen, MaxPayload: MaxEntryBytes,
		PeerKeys: peerKeys, Logger: slog.New(minLevel{cfg.Logger.Handler(), slog.LevelWarn}).With("component", "nats"),
		Cluster: &natslog.ClusterConfig{Auth: nodeRouteAuth(j.node, pins)}}
	if j.embedded, j.cluster, err = startClusterNATS(ctx, cc, cfg.DataDir, j.node.ID, base, true, j.logger); err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	j.stopPins, j.pinsDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(j.pinsDone)
		j.followPins(j.embedded, j.embedded.RoutePins(), j.stopPins) // routeauth.go
	}()
	j.logger.Info("joined", slog.String("node_id", j.NodeID), slog.String("status", j.Status))
	return j, nil
}

// discover reads the service's /node/network: it must be a gavel service
// and a clustered one.
func discover(ctx context.Context, c *client.Client, url string) (client.NetworkInfo, error) {
	info, err := c.Network(ctx)
	if err != nil {
		return info, engine.Wrap(engine.KindInvalid, "NotAGavelService", fmt.Errorf("%w: %w", ErrNotAGavelService, err), "%s", url)
	}
	if info.ServiceCertificate == "" || info.ServiceStatus == "" {
		return info, engine.Wrap(engine.KindInvalid, "NotAGavelService", ErrNotAGavelService, "%s answers GET /node/network without a service certificate", url)
	}
	if info.Cluster == nil || len(info.Cluster.Routes) == 0 {
		return info, engine.Wrap(engine.KindInvalid, "ServiceNotClustered", ErrNotClustered, "%s", url)
	}
	return info, nil
}

// checkServiceData refuses a data folder that holds another service's
// identity or ledger.
func checkServiceData(dir, certPEM string) error {
	b, err := os.ReadFile(filepath.Join(dir, ServiceCertFile))
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
			return engine.Wrap(engine.KindInvalid, "OtherServiceData", ErrOtherService, "%s holds a state but no %s", dir, ServiceCertFile)
		}
		return nil
	}
	if err != nil {
		return err
	}
	a, errA := parseIdentityCert(b)
	s, errS := parseIdentityCert([]byte(certPEM))
	if errA != nil || errS != nil || !a.Equal(s) {
		return engine.Wrap(engine.KindInvalid, "OtherServiceData", ErrOtherService, "%s/%s is not the service certificate of the service joined", dir, ServiceCertFile)
	}
	return nil
}

func loadOrCreateSealKey(dir string) (*[32]byte, error) {
	path := filepath.Join(dir, sealKeyFile)
	var k [32]byte
	b, err := os.ReadFile(path)
	if err == nil && len(b) == 32 {
		copy(k[:], b)
		return &k, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err == nil {
		return nil, fmt.Errorf("%s is not a 32-byte key", path)
	}
	if _, priv, err := box.GenerateKey(rand.Reader); err != nil {
		return nil, err
	} else {
		k = *priv
	}
	return &k, writeFileAtomic(path, k[:], 0o600)
}

// sealPublic is the public half of the seal key.
func sealPublic(priv *[32]byte) *[32]byte {
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		panic("replica: a 32-byte X25519 key is refused: " + err.Error())
	}
	var pub [32]byte
	copy(pub[:], k.PublicKey().Bytes())
	return &pub
}

// joinRequest is the node's signed join: role service, virtual evidence
// whose host data is SHA-256 of the code version, and its cluster data.
func (j *Joiner) joinRequest(serverName, route string, seeds natslog.Seeds) ([]byte, error) {
	data, err := json.Marshal(nodeDataEnvelope{Cluster: &ClusterNodeData{
		ServerName: serverName, Route: route,
		NATSUsers: natsUsers(seeds),
		SealKey:   base64.StdEncoding.EncodeToString(sealPublic(j.sealPriv)[:]),
	}})
	if err != nil {
		return nil, err
	}
	addr := j.cfg.Address
	if addr == "" {
		addr = strings.TrimPrefix(route, "nats-route://")
	}
	cv := j.cfg.Cluster.CodeVersion
	return nodeagent.Request(nodeagent.Config{Role: nodes.RoleService, Address: addr, CodeVersion: cv, NodeData: data,
		Attestation: nodeagent.Attestation{Format: "virtual", HostData: VirtualHostData(cv), Measurement: ReplicaMeasurement}}, "", j.node.Key)
}

// JoinAnswer is POST /node/join's answer to a service node: CCF's fields,
// and for a Trusted service node that sent a seal key, the service
// identity's key sealed to it (nacl/box anonymous sealed box).
type JoinAnswer struct {
	nodes.JoinResult
	SealedServiceKey []byte `json:"sealed_service_key,omitempty"`
}

// serviceSecrets is what a Trusted joiner gets sealed: the service
// identity's key and the network-map key with its certificate (every
// replica signs roots and maps with the same keys).
type serviceSecrets struct {
	ServiceKey []byte `json:"service_key"` // PKCS#8 PEM
	MapKey     []byte `json:"map_key"`     // PKCS#8 PEM
	MapCert    []byte `json:"map_cert"`    // PEM, issued by the service identity
}

// poll sends the join (the first time) or polls it, and records the answer.
func (j *Joiner) poll(ctx context.Context) error {
	a, err := j.client.Do(ctx, http.MethodPost, "/node/join", "application/cose", j.signed)
	if err != nil {
		return fmt.Errorf("join %s: %w", j.cfg.URL, err)
	}
	var res JoinAnswer
	if err := json.Unmarshal(a.Body, &res); err != nil {
		return engine.Wrap(engine.KindInternal, "UnexpectedAnswer", err, "POST /node/join answered %q", a.Body)
	}
	j.NodeID, j.Status = res.NodeID, res.NodeStatus
	if res.NodeStatus != nodes.StatusTrusted {
		return nil
	}
	if len(res.SealedServiceKey) == 0 {
		return engine.Errorf(engine.KindInternal, "NoServiceKey", "the service trusted node %s but handed over no service key", res.NodeID)
	}
	raw, ok := box.OpenAnonymous(nil, res.SealedServiceKey, sealPublic(j.sealPriv), j.sealPriv)
	if !ok {
		return engine.Errorf(engine.KindInvalid, "BadSealedKey", "the sealed service key does not open with this node's seal key")
	}
	defer clear(raw)
	var sec serviceSecrets
	if err := json.Unmarshal(raw, &sec); err != nil {
		return engine.Wrap(engine.KindInvalid, "BadSealedKey", err, "the sealed service secrets are not gavel's")
	}
	defer clear(sec.ServiceKey)
	defer clear(sec.MapKey)
	return j.installIdentity([]byte(j.service.ServiceCertificate), sec)
}

// installIdentity writes the service identity and the network-map key
// handed over, after checking each key is its certificate's and the map
// certificate is the service's.
func (j *Joiner) installIdentity(certPEM []byte, sec serviceSecrets) error {
	id, err := parseIdentity(certPEM, sec.ServiceKey)
	if err != nil {
		return fmt.Errorf("service identity handed over: %w", err)
	}
	dir := j.cfg.DataDir
	if err := writeFileAtomic(filepath.Join(dir, mapKeyFile), sec.MapKey, 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, MapCertFile), sec.MapCert, 0o644); err != nil {
		return err
	}
	if _, err := loadOrCreateMapIdentity(dir, id, time.Now()); err != nil {
		os.Remove(filepath.Join(dir, mapKeyFile))
		os.Remove(filepath.Join(dir, MapCertFile))
		return fmt.Errorf("network-map key handed over: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, serviceKeyFile), sec.ServiceKey, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, ServiceCertFile), certPEM, 0o644)
}

// WaitTrusted polls the join every interval until members trust the node
// (transition_node_to_trusted), then gives its server a Trusted replica's
// rights. The service identity has then been handed over (sealed) and is
// in the data folder.
//
// This is where the follower role starts (issue 11, item 2): a Trusted
// joiner's data folder holds everything replica.Open needs — the node
// key, the service identity, cluster.json — and its server is already a
// peer of the cluster.
func (j *Joiner) WaitTrusted(ctx context.Context, interval time.Duration) error {
	for j.Status != nodes.StatusTrusted {
		select {
		case <-ctx.Done():
			return engine.Wrap(engine.KindPending, "StillPending", ctx.Err(), "node %s is still %s", j.NodeID, j.Status)
		case <-time.After(interval):
		}
		if err := j.poll(ctx); err != nil {
			return err
		}
	}
	if err := j.promote(); err != nil {
		return err
	}
	j.logger.Info("trusted", slog.String("node_id", j.NodeID))
	return nil
}

// promote gives a Trusted joiner's server a Trusted replica's rights and
// tags, once.
func (j *Joiner) promote() error {
	if !j.embedded.Pending() {
		return nil
	}
	if err := j.embedded.Reload(peerKeysOf(j.service.Cluster.NATSUsers), false); err != nil {
		return err
	}
	// Now a server the streams may be placed on.
	return j.embedded.Retag(serverTags(j.cfg.Cluster.CodeVersion, false))
}

func peerKeysOf(users map[string][]string) map[natslog.User][]string {
	out := map[natslog.User][]string{}
	for u, ks := range users {
		out[natslog.User(u)] = ks
	}
	return out
}

// Embedded is the joiner's server; ClusterURL its route.
func (j *Joiner) Embedded() *natslog.Embedded { return j.embedded }
func (j *Joiner) ClusterURL() string          { return j.embedded.ClusterURL() }

// Node is the joiner's node identity.
func (j *Joiner) Node() *NodeIdentity { return j.node }

// OpenJoined opens the replica of a Trusted joiner on the server it
// joined with (which stays a peer throughout, so its stream replicas never
// move) and its data folder: a replica of the service like the others,
// following the ledger and leading when it holds the lease. cfg is as for
// Open; its DataDir, Lock, NATS and Cluster are the joiner's. The joiner
// is spent: Close then stops nothing.
func OpenJoined(ctx context.Context, j *Joiner, cfg Config) (*Replica, error) {
	if j.Status != nodes.StatusTrusted || j.embedded == nil {
		return nil, engine.Errorf(engine.KindInvalid, CodeNotTrusted, "node %s is %s: only a Trusted joiner opens a replica", j.NodeID, j.Status)
	}
	if err := j.promote(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = j.logger
	}
	cfg.DataDir, cfg.Lock, cfg.NATS, cfg.Cluster = j.cfg.DataDir, j.lock, nil, nil
	pre := &started{embedded: j.embedded, cluster: j.cluster}
	j.embedded, j.lock, j.cluster = nil, nil, nil
	return open(ctx, cfg, pre)
}

// Rejoining reports whether dataDir is a joined replica's that was
// Trusted (it holds cluster.json and the service key handed over): it
// restarts from its folder, on the routes it kept, like any clustered
// replica (Open with a ClusterConfig), so that a whole service can restart
// without one replica waiting for another's HTTP address.
func Rejoining(dataDir string) bool {
	for _, f := range []string{clusterFile, serviceKeyFile, mapKeyFile} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err != nil {
			return false
		}
	}
	return true
}

// CodeNotTrusted refuses to hand over a joiner that is not Trusted yet.
const CodeNotTrusted = "NodeNotTrusted"

// Close stops the joiner's server and releases the data folder.
func (j *Joiner) Close() {
	j.endPins()
	j.cluster.close()
	if j.embedded != nil {
		j.embedded.Shutdown()
	}
	if j.lock != nil {
		j.lock.Release()
		j.lock = nil
	}
}

// sealServiceKey is the service identity's key sealed to a Trusted
// service node's seal key (CCF hands the ledger secrets to a trusted
// joiner): nil for any other node. Only the ledger's record says who is
// Trusted, so a Pending node never gets it.
func (r *Replica) sealServiceKey(rec nodes.Record) ([]byte, error) {
	if rec.Status != nodes.StatusTrusted || rec.Role != nodes.RoleService {
		return nil, nil
	}
	data, ok := clusterDataOf(rec.NodeData)
	if !ok || data.SealKey == "" {
		return nil, nil
	}
	raw, err := base64.StdEncoding.DecodeString(data.SealKey)
	if err != nil || len(raw) != 32 {
		return nil, engine.Errorf(engine.KindInvalid, "BadSealKey", "node %s's seal key is not a base64 X25519 key", rec.NodeID)
	}
	var pub [32]byte
	copy(pub[:], raw)
	sec := serviceSecrets{MapCert: r.nm.id.certPEM}
	for _, k := range []struct {
		key crypto.Signer
		out *[]byte
	}{{r.identity.Key, &sec.ServiceKey}, {r.nm.id.key, &sec.MapKey}} {
		der, err := x509.MarshalPKCS8PrivateKey(k.key)
		if err != nil {
			return nil, err
		}
		*k.out = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		clear(der)
		defer clear(*k.out)
	}
	payload, err := json.Marshal(sec)
	if err != nil {
		return nil, err
	}
	defer clear(payload)
	return box.SealAnonymous(nil, payload, &pub, rand.Reader)
}

// DataDir is the joiner's data folder.
func (j *Joiner) DataDir() string { return j.cfg.DataDir }

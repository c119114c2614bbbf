package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/internal/bounded"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/engine/state"
)

// MaxEntryBytes is the NATS payload limit of the embedded server: room for
// the largest request the handlers accept and the entry around it.
const MaxEntryBytes = 8 << 20

// Config holds a replica's settings.
type Config struct {
	DataDir    string // identity, NATS store, pebble state
	NATSListen string // embedded NATS client listener, e.g. 127.0.0.1:4222 (":0" picks a port)
	Sequencer  sequencer.Config
	Logger     *slog.Logger

	// Genesis: the first members (none: a member0 key and certificate are
	// made in DataDir, named as CCF names them), the constitution module
	// (empty: the default one) and the service configuration.
	Members            []gov.InitialMember
	ConstitutionModule string
	Governance         gov.Config

	// Lock is the data folder's lock, when the caller took it (gavel serve
	// does, before it listens); nil: Open takes it. The replica owns it.
	Lock *DirLock

	// DevSNPRoot is a development SEV-SNP root (PEM ARK) to trust; genesis
	// records it.
	DevSNPRoot []byte

	MaxGovRequestBytes int64               // largest signed governance request
	ScriptLimits       constitution.Limits // per constitution or ballot call
	Now                func() time.Time    // the clock; time.Now by default

	// NATSMaxConnections caps the embedded server's connections, so a
	// flood of them leaves JetStream its files; 0 means
	// natslog.DefaultMaxConnections.
	NATSMaxConnections int
	Netmap             NetmapConfig // the network map (netmap.go)

	// NATS is a server the replica runs on but did not start (a member of
	// a JetStream cluster): it connects to it, never shuts it down, and is
	// one of several replicas, sequencing only while it holds the leader
	// lease and following the ledger otherwise (follower.go). nil: it
	// starts its own standalone server and is the only replica, as before.
	// Replicas of one service share its identity files (CopyServiceIdentity).
	NATS *natslog.Embedded
	// StreamReplicas is how many servers keep each of the ledger, feeds
	// and lease streams (0: 1).
	StreamReplicas int
	// External runs the replica, with the roles of NATS, on a NATS cluster
	// it did not start (external.go); NATS must then be nil.
	External *ExternalNATS
	// Lease tunes the leader lease of a replica on a shared server.
	Lease LeaseConfig
	// AppliedWait bounds a read's wait for a transaction it names
	// (?min_txid=); 0 means MaxAppliedWait.
	AppliedWait time.Duration
	// OnCommit is told of every submitted command (observe.go); nil: nobody.
	OnCommit func(CommitReport)
	// Cluster runs the replica as one server of a JetStream cluster
	// (cluster.go); nil: the embedded single-replica default.
	Cluster *ClusterConfig
}

// Replica is one running gavel replica.
type Replica struct {
	cfg      Config
	logger   *slog.Logger
	identity *Identity
	node     *NodeIdentity
	embedded *natslog.Embedded
	conn     *nats.Conn
	log      *LedgerLog
	lock     *DirLock
	signer   rootSigner
	watch    *storageWatch // the embedded store's write errors
	shared   bool          // embedded is cfg.NATS: not ours to shut down
	roles    *roles        // primary or follower; nil for the only replica

	// One connection per job, each as its own NATS user: the sequencer's
	// (conn) writes the ledger, the feed publisher's the feeds, the
	// handler's answers requests and can write neither.
	feedsConn, handlerConn *nats.Conn

	// mu guards store and seq, which the restart path replaces; readers
	// hold it (reading) for as long as they use the store.
	mu    sync.RWMutex
	store *state.Store
	seq   *sequencer.Sequencer
	fault replicaFault

	verifySlots chan struct{}                         // bounds concurrent signature checks to the cores
	signedRoots *bounded.Cache[uint64, engine.Digest] // signature seqno → verified root
	nm          *netmapSide                           // the network map's read side (netmap.go)
	feeds       *feeds

	cluster     *clusterNATS  // nil standalone
	retired     chan struct{} // closed once retired and out of the cluster
	retiredOnce sync.Once
	peerKeys    map[natslog.User][]string // other replicas' users the server admits

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// Open starts a replica: identity, embedded NATS with the ledger streams,
// pebble state caught up with the log, the sequencer, and genesis on the
// first start. It returns once the replica can serve. On a full disk it
// says so and waits for space (until ctx ends) instead of failing.
func Open(ctx context.Context, cfg Config) (*Replica, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return waitForSpace(ctx, cfg.Logger, cfg.DataDir, func() (*Replica, error) { return open(ctx, cfg, nil) })
}

// started is a clustered server a Trusted joiner hands over (OpenJoined).
type started struct {
	embedded *natslog.Embedded
	cluster  *clusterNATS
}

func open(ctx context.Context, cfg Config, joined *started) (_ *Replica, err error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Sequencer = cfg.Sequencer.WithDefaults()
	// Scripts' wall-clock and heap limits are safety nets (the budget is
	// ledger state): unset, they take the same defaults as gavel serve.
	if net := constitution.DefaultSafetyNet(); cfg.ScriptLimits.Timeout <= 0 {
		cfg.ScriptLimits.Timeout = net.Timeout
	}
	if net := constitution.DefaultSafetyNet(); cfg.ScriptLimits.MaxHeapGrowth == 0 {
		cfg.ScriptLimits.MaxHeapGrowth = net.MaxHeapGrowth
	}
	if cfg.MaxGovRequestBytes <= 0 {
		cfg.MaxGovRequestBytes = govreq.DefaultMaxSize
	}
	if cfg.NATSListen == "" {
		cfg.NATSListen = "127.0.0.1:4222"
	}
	// One replica per folder, decided before anything in it is opened.
	lock := cfg.Lock
	if lock == nil {
		if lock, err = LockDir(cfg.DataDir, "gavel replica", true); err != nil {
			return nil, err
		}
	}
	r := &Replica{cfg: cfg, logger: cfg.Logger, verifySlots: make(chan struct{}, runtime.GOMAXPROCS(0)),
		signedRoots: bounded.New[uint64, engine.Digest](4096), lock: lock, retired: make(chan struct{})}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	// A busy NATS port fails before any key is written.
	if cfg.NATS == nil && cfg.External == nil && joined == nil {
		if err := CheckListen("nats", cfg.NATSListen); err != nil {
			return nil, err
		}
	}
	if r.identity, err = LoadOrCreateIdentity(cfg.DataDir, cfg.Now()); err != nil {
		return nil, fmt.Errorf("service identity: %w", err)
	}
	if r.node, err = LoadOrCreateNodeIdentity(cfg.DataDir, cfg.Now()); err != nil {
		return nil, fmt.Errorf("node identity: %w", err)
	}
	r.logger.Info("node identity", slog.String("node_id", r.node.ID))
	// Its node's retirement is the last entry a sequencer of this replica writes.
	cfg.Sequencer.NodeID, r.cfg.Sequencer.NodeID = r.node.ID, r.node.ID
	switch {
	case cfg.NATS != nil:
		r.embedded, r.shared = cfg.NATS, true
		return r.openReplicated(ctx)
	case cfg.External != nil:
		return r.openReplicated(ctx)
	case joined != nil:
		r.embedded, r.cluster = joined.embedded, joined.cluster
		return r.openReplicated(ctx)
	}
	natsCfg := natslog.EmbeddedConfig{
		DataDir: filepath.Join(cfg.DataDir, "nats"),
		Listen:  cfg.NATSListen,
		// An entry carries its request verbatim plus a few hundred bytes.
		MaxPayload:     MaxEntryBytes,
		MaxConnections: cfg.NATSMaxConnections,
		Logger:         slog.New(minLevel{cfg.Logger.Handler(), slog.LevelWarn}).With("component", "nats"),
		Cluster:        clusterRouteAuth(cfg.Cluster, r.node), // routeauth.go; startClusterNATS completes it
	}
	if cfg.Cluster != nil {
		// A clustered replica is one of several from its first day: it
		// leads while it holds the lease, and follows otherwise.
		if r.embedded, r.cluster, err = startClusterNATS(ctx, *cfg.Cluster, cfg.DataDir, r.node.ID, natsCfg, false, r.logger); err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		r.logger.Info("nats listening", slog.String("nats", r.embedded.ClientURL()))
		return r.openReplicated(ctx)
	}
	if err = checkNotClustered(cfg.DataDir); err == nil {
		r.embedded, err = natslog.StartEmbedded(natsCfg)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	r.logger.Info("nats listening", slog.String("nats", r.embedded.ClientURL()))
	for _, c := range []struct {
		conn **nats.Conn
		user natslog.User
	}{{&r.conn, natslog.UserSequencer}, {&r.feedsConn, natslog.UserFeeds}, {&r.handlerConn, natslog.UserHandler}} {
		if *c.conn, err = r.embedded.ConnectService(c.user, nats.ErrorHandler(r.asyncError(c.user))); err != nil {
			return nil, fmt.Errorf("connect as %s: %w", c.user, err)
		}
	}
	js, err := jetstream.New(r.conn)
	if err != nil {
		return nil, err
	}
	if err := natslog.EnsureStreams(ctx, js, 1); err != nil {
		return nil, fmt.Errorf("streams: %w", err)
	}
	if r.log, err = NewLedgerLog(r.conn, js, r.node.Signer()); err != nil {
		return nil, err
	}
	if r.store, err = openState(cfg.DataDir); err != nil {
		return nil, err
	}
	r.store.SetLogger(r.logger.With("component", "state"))
	started := time.Now()
	if err := state.CatchUp(ctx, r.store, r.log); err != nil {
		return nil, fmt.Errorf("catch up with the log: %w", err)
	}
	meta := r.store.Meta()
	r.logger.Info("state caught up with the log", slog.Uint64("seqno", meta.Seqno), slog.Duration("took", time.Since(started)))
	// Before anything is signed: a ledger is only ever signed by its own identity.
	if meta.Seqno > 0 {
		if err := r.checkIdentity(); err != nil {
			return nil, err
		}
		if err := r.checkNode(); err != nil {
			return nil, err
		}
	}
	if err := r.openNetmap(); err != nil {
		return nil, err
	}
	if n, last := r.store.Voids(); n > 0 {
		r.logger.Error("the ledger holds void entries: messages that are not authenticated entries, never applied",
			slog.Uint64("count", n), slog.Uint64("last_seqno", last.Seqno), slog.String("last_reason", last.Reason))
	}

	if r.signer, err = newRootSigner(r.identity); err != nil {
		return nil, err
	}
	// A new sequencer term: views only grow, so txids never repeat.
	r.watch = newStorageWatch(r.embedded.Server(), r.logger.With("component", "storage"))
	r.seq = sequencer.New(cfg.Sequencer, meta.View+1, r.store, r.seqLog(), r.signer, r.logger.With("component", "sequencer"))
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		r.watch.run(runCtx)
	}()
	go func(seq *sequencer.Sequencer) {
		defer r.wg.Done()
		r.supervise(runCtx, seq)
	}(r.seq)
	if meta.Seqno == 0 {
		if err := r.genesis(ctx); err != nil {
			return nil, err
		}
	}
	if err := r.startNetmap(runCtx); err != nil {
		return nil, err
	}
	return r, nil
}

// genesis writes the genesis entry of a new service.
func (r *Replica) genesis(ctx context.Context) error {
	cfg := r.cfg
	govWrites, err := r.genesisGovernance()
	if err != nil {
		return err
	}
	nmGenesis, nodes := r.netmapGenesis()
	out, err := r.submit(ctx, exec.Genesis{ServiceCertPEM: r.identity.CertPEM, Settings: exec.ServiceSettings{
		SignatureEvery:      cfg.Sequencer.SignEvery,
		SignatureIntervalMs: cfg.Sequencer.SignInterval.Milliseconds(),
		Virtual:             true,
		DevSNPRoot:          string(cfg.DevSNPRoot),
	}, Node: r.node.Record(), Governance: govWrites, NetworkMap: nmGenesis, Nodes: nodes})
	if err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	r.logger.Info("service created", slog.String("txid", out.TxID.String()))
	return nil
}

// genesisGovernance builds the governance tables of a new service.
func (r *Replica) genesisGovernance() (engine.WriteSet, error) {
	members := r.cfg.Members
	if len(members) == 0 {
		certPEM, err := r.createMember0()
		if err != nil {
			return nil, err
		}
		members = []gov.InitialMember{{CertPEM: certPEM}}
	}
	module := r.cfg.ConstitutionModule
	if module == "" {
		var err error
		if module, err = constitution.DefaultModule(); err != nil {
			return nil, fmt.Errorf("default constitution: %w", err)
		}
	}
	cfg := r.cfg.Governance
	if cfg == (gov.Config{}) {
		cfg = gov.DefaultConfig()
	}
	ws, err := gov.GenesisWrites(members, module, cfg)
	if err != nil || r.cfg.Cluster == nil {
		return ws, err
	}
	return append(ws, clusterGenesisWrites(r.cfg.Cluster.CodeVersion)...), nil
}

// Member0 file names, as CCF names a member's files.
const (
	Member0CertFile = "member0_cert.pem"
	Member0KeyFile  = "member0_privk.pem"
)

// createMember0 makes the first member's key and certificate in the data
// folder, for a service started without --member-cert.
func (r *Replica) createMember0() ([]byte, error) {
	certPEM, keyPEM, err := govreq.Keygen("ES384", "member0")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(r.cfg.DataDir, Member0KeyFile), keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(r.cfg.DataDir, Member0CertFile), certPEM, 0o644); err != nil {
		return nil, err
	}
	r.logger.Info("first member created", slog.String("cert", filepath.Join(r.cfg.DataDir, Member0CertFile)),
		slog.String("key", filepath.Join(r.cfg.DataDir, Member0KeyFile)))
	return certPEM, nil
}

// checkIdentity refuses to serve a ledger created by another identity.
func (r *Replica) checkIdentity() error {
	pemBytes, ok, err := r.store.Get(engine.TableService, exec.KeyServiceCertificate)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("the ledger has no genesis entry")
	}
	cert, err := parseIdentityCert(pemBytes)
	if err != nil {
		return fmt.Errorf("genesis certificate: %w", err)
	}
	if !cert.Equal(r.identity.Cert) {
		return fmt.Errorf("%s is not the certificate recorded at genesis", ServiceCertFile)
	}
	return nil
}

// checkNode refuses to sequence with a node key the ledger does not trust:
// every entry it wrote would be void to every other reader.
func (r *Replica) checkNode() error {
	trusted, err := engine.LoadTrustedNodes(r.store)
	if err != nil {
		return err
	}
	if !trusted.Trusts(r.node.ID) {
		return fmt.Errorf("%s (node %s) is not a Trusted service node of this ledger", NodeCertFile, r.node.ID)
	}
	return nil
}

// Voids reports the void entries the state holds: how many, and the last
// one's seqno and reason.
func (r *Replica) Voids() (uint64, state.VoidRecord) {
	st, done, err := r.reading()
	defer done()
	if err != nil {
		return 0, state.VoidRecord{}
	}
	return st.Voids()
}

// Node is the replica's node identity.
func (r *Replica) Node() *NodeIdentity { return r.node }

// NATSURL is the embedded server's client URL.
func (r *Replica) NATSURL() string { return r.natsURL() }

// SequencerConn is the sequencer's NATS connection: the only one that may
// write the ledger.
func (r *Replica) SequencerConn() *nats.Conn { return r.conn }

// FeedsConn is the feed publisher's connection: the only one that may
// write the feeds.
func (r *Replica) FeedsConn() *nats.Conn { return r.feedsConn }

// HandlerConn is the connection that answers requests: it may subscribe to
// the submit subjects and publish answers into client inboxes, nothing else.
func (r *Replica) HandlerConn() *nats.Conn { return r.handlerConn }

// HasInterest says whether anyone still listens on subject (a requester's
// reply subject, say).
// On an external cluster it cannot tell: true.
func (r *Replica) HasInterest(subject string) bool {
	return r.embedded == nil || r.embedded.HasInterest(subject)
}

// Identity is the service identity.
func (r *Replica) Identity() *Identity { return r.identity }

// Sequencer is the replica's sequencer now; the restart path replaces it.
func (r *Replica) Sequencer() *sequencer.Sequencer {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.seq
}

// Store is the replica's state now; the restart path replaces it (nil
// while it re-opens).
func (r *Replica) Store() *state.Store {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.store
}

// ClientCredsFile is the path of client kind u's seed (DATA/nats/<u>.nk,
// its UserInfo beside it as <u>.json); "" on an external cluster, whose
// users are its operator's.
func (r *Replica) ClientCredsFile(u natslog.User) string {
	if r.embedded == nil {
		return ""
	}
	return r.embedded.Seeds().File(u)
}

// Close stops the sequencer, then NATS, then the store.
func (r *Replica) Close() error {
	r.closed.Do(func() {
		if r.cancel != nil {
			r.cancel()
		}
		r.wg.Wait()
		for _, nc := range []*nats.Conn{r.handlerConn, r.feedsConn, r.conn} {
			if nc != nil {
				nc.Drain()
				nc.Close()
			}
		}
		if r.roles != nil && r.roles.conn != nil {
			r.roles.forwards.Wait()
			r.roles.conn.Drain()
			r.roles.conn.Close()
		}
		if r.cluster != nil && r.cluster.sys != nil {
			r.cluster.sys.Close()
		}
		if r.embedded != nil && !r.shared {
			r.embedded.Shutdown()
		}
		r.cluster.close() // the witness after the replica's server
		r.mu.Lock()
		if r.store != nil {
			r.store.Close()
			r.store = nil
		}
		r.mu.Unlock()
		r.lock.Release()
	})
	return nil
}

// asyncError logs what the server or the client library reports on a
// connection out of band: a permission violation (a bug: each user is
// allowed exactly its job) or a slow consumer (the library reports it once
// per episode; the drops are counted by the handlers' stats).
func (r *Replica) asyncError(u natslog.User) nats.ErrHandler {
	return func(_ *nats.Conn, sub *nats.Subscription, err error) {
		attrs := []any{slog.String("user", string(u)), slog.Any("err", err)}
		if sub != nil {
			attrs = append(attrs, slog.String("subject", sub.Subject))
		}
		r.logger.Warn("nats connection error", attrs...)
	}
}

// minLevel drops records below a level (the NATS server is chatty at info).
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(a), h.level}
}
func (h minLevel) WithGroup(n string) slog.Handler { return minLevel{h.Handler.WithGroup(n), h.level} }

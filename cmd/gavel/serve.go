package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine/attest/devsnp"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/handlers"
)

func init() {
	register("serve", "run a replica: embedded NATS + JetStream, HTTP and NATS endpoints", runServe)
}

// serveFlags are the settings of gavel serve.
type serveFlags struct {
	data, natsListen, httpListen, logLevel string
	seq                                    sequencer.Config
	limits                                 handlers.Limits
	memberCerts                            stringList
	constitutionDir                        string
	scripts                                constitution.Limits

	fdLimit                 uint64 // soft RLIMIT_NOFILE; 0: the hard limit
	maxConns, maxConnsPerIP int    // HTTP connection caps; 0: from the descriptor budget
	natsMaxConns            int    // embedded NATS connection cap
	devSNPRoot              string // a development SEV-SNP ARK (PEM) to trust
	mapMaxAge               time.Duration

	// A replicated service: --cluster starts its first replica, --join URL
	// adds one.
	cluster                   bool
	join, clusterListen, code string

	// An external NATS cluster (--nats URL --creds F): serveExternal.
	nats, creds, systemCreds string
	allowSmallCluster        bool
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func (f *serveFlags) register(fs *flag.FlagSet) {
	f.seq = sequencer.DefaultConfig()
	f.limits = handlers.DefaultLimits()
	fs.StringVar(&f.data, "data", "./gavel-data", "data folder (identity, NATS store, state)")
	fs.StringVar(&f.natsListen, "nats-listen", "127.0.0.1:4222", "embedded NATS client listener (host:port, port 0 picks one)")
	fs.IntVar(&f.natsMaxConns, "nats-max-connections", 0, "cap on the embedded NATS server's connections, the replica's own included (0: a quarter of the descriptors kept for NATS, JetStream and pebble)")
	fs.StringVar(&f.httpListen, "http", "127.0.0.1:8080", "HTTP listener (host:port, port 0 picks one)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.IntVar(&f.seq.SignEvery, "sign-every", f.seq.SignEvery, "a signature entry at least every N entries")
	fs.DurationVar(&f.seq.SignInterval, "sign-interval", f.seq.SignInterval, "a signature entry at most this long after an unsigned entry")
	fs.IntVar(&f.seq.MaxBatch, "max-batch", f.seq.MaxBatch, "entries per atomic batch (≤ 1000)")
	fs.DurationVar(&f.seq.Linger, "linger", f.seq.Linger, "how long a round waits for more requests")
	fs.IntVar(&f.seq.QueueSize, "queue", f.seq.QueueSize, "pending requests before the service pushes back (503)")
	fs.Int64Var(&f.limits.MaxStatementBytes, "max-statement-bytes", f.limits.MaxStatementBytes, "largest signed statement accepted")
	fs.Int64Var(&f.limits.MaxGovBytes, "max-gov-bytes", f.limits.MaxGovBytes, "largest signed governance request accepted")
	fs.Var(&f.memberCerts, "member-cert", "initial member certificate (PEM), repeatable; none: member0 is created in --data")
	fs.StringVar(&f.devSNPRoot, "dev-snp-root", "", "trust a development SEV-SNP root (the ark.pem of gavel dev snp-signer); genesis records it")
	fs.StringVar(&f.constitutionDir, "constitution", "", "folder of constitution modules (*.js); default: the embedded scripts/constitution")
	fs.Uint64Var(&f.fdLimit, "fd-limit", 0, "soft limit of open descriptors (0: raised to the hard limit)")
	fs.IntVar(&f.maxConns, "max-conns", 0, "open HTTP connections in all (0: half the descriptors free at start, at most 16384)")
	fs.IntVar(&f.maxConnsPerIP, "max-conns-per-ip", 0, "open HTTP connections from one client address (0: an eighth of --max-conns)")
	fs.DurationVar(&f.mapMaxAge, "map-max-age", time.Minute, "Cache-Control max-age of GET /network-map")
	fs.BoolVar(&f.cluster, "cluster", false, "start the first replica of a replicable service: clustered JetStream from genesis, with a meta-only witness until three replicas are peers")
	fs.StringVar(&f.join, "join", "", "join the clustered service at this replica's HTTP address as a new replica (a service node: Pending until members trust it)")
	fs.StringVar(&f.clusterListen, "cluster-listen", "127.0.0.1:6222", "NATS route listener of a clustered replica (host:port, port 0 picks one and keeps it across restarts)")
	fs.StringVar(&f.nats, "nats", "", "run on this existing NATS cluster (nats://host:port[,…]) instead of an embedded server; it must sync every write, run nats-server ≥ "+natslog.MinServerVersion+" and have three JetStream servers")
	fs.StringVar(&f.creds, "creds", "", "with --nats: the user every role of the replica connects as (an nkey seed or a .creds file; it needs the ledger's, the feeds', the lease's and the requests' rights)")
	fs.StringVar(&f.systemCreds, "system-creds", "", "with --nats: a system account user's credentials, to survey the cluster's servers (default: --creds)")
	fs.BoolVar(&f.allowSmallCluster, "allow-small-cluster", false, "with --nats: allow fewer than three JetStream servers (development only: the streams get fewer copies)")
	fs.StringVar(&f.code, "code-version", "", "this replica's code version: its server's placement tag and, in virtual mode, its host data's preimage (needed with --cluster and --join)")
	// The script budget is ledger state (set_js_runtime_options); these are
	// the process's safety nets: tripping one refuses the request.
	f.scripts = constitution.DefaultSafetyNet()
	scriptSafetyFlags(fs, &f.scripts)
}

// seqFlags names the sequencer settings' flags.
var seqFlags = map[string]string{
	"MaxBatch": "--max-batch", "Linger": "--linger", "QueueSize": "--queue",
	"SignEvery": "--sign-every", "SignInterval": "--sign-interval",
}

// maxRequestBytes is the largest body limit: a request and the entry
// around it must fit the embedded server's payload limit.
const maxRequestBytes = replica.MaxEntryBytes - 1<<20

// validate refuses a setting out of its range, naming the flag and the
// range; nothing is clamped.
func (f *serveFlags) validate() error {
	if err := f.seq.Validate(); err != nil {
		var re *sequencer.RangeError
		if errors.As(err, &re) && seqFlags[re.Field] != "" {
			return fmt.Errorf("%s %v is out of range %v..%v", seqFlags[re.Field], re.Value, re.Min, re.Max)
		}
		return err
	}
	for _, c := range []struct {
		flag        string
		v, min, max int64
	}{
		{"--max-statement-bytes", f.limits.MaxStatementBytes, 1 << 10, maxRequestBytes},
		{"--max-gov-bytes", f.limits.MaxGovBytes, 1 << 10, maxRequestBytes},
		{"--max-conns", int64(f.maxConns), 0, 1 << 20},
		{"--max-conns-per-ip", int64(f.maxConnsPerIP), 0, 1 << 20},
	} {
		if c.v < c.min || c.v > c.max {
			return fmt.Errorf("%s %d is out of range %d..%d", c.flag, c.v, c.min, c.max)
		}
	}
	if f.fdLimit != 0 && f.fdLimit < minFDLimit {
		return fmt.Errorf("--fd-limit %d is below the %d a replica needs (0: the hard limit)", f.fdLimit, minFDLimit)
	}
	if f.natsMaxConns != 0 && (f.natsMaxConns < 8 || f.natsMaxConns > 1<<20) {
		return fmt.Errorf("--nats-max-connections %d is out of range 8..%d (0: from the descriptor budget; the replica itself holds 3)", f.natsMaxConns, 1<<20)
	}
	if f.cluster && f.join != "" {
		return errors.New("--cluster starts a new service and --join joins one: give one of them")
	}
	if f.nats != "" && (f.cluster || f.join != "") {
		return errors.New("--nats runs on a NATS cluster gavel did not start; --cluster and --join route gavel's own servers: give one of them")
	}
	if f.nats != "" && f.creds == "" {
		return errors.New("--nats needs --creds: the user the replica connects as")
	}
	if f.nats == "" && (f.creds != "" || f.systemCreds != "" || f.allowSmallCluster) {
		return errors.New("--creds, --system-creds and --allow-small-cluster go with --nats")
	}
	if (f.cluster || f.join != "") && strings.TrimSpace(f.code) == "" {
		return errors.New("--code-version is needed with --cluster and --join")
	}
	if f.maxConns > 0 && f.maxConnsPerIP > f.maxConns {
		return fmt.Errorf("--max-conns-per-ip %d is over --max-conns %d", f.maxConnsPerIP, f.maxConns)
	}
	return nil
}

// connLimits derives the HTTP connection caps from the descriptors free
// now, or checks the flags' against them.
func (f *serveFlags) connLimits(soft uint64, open int) (handlers.ConnLimits, error) {
	budget, refuse, _ := connBudget(soft, open)
	lim := handlers.ConnLimits{MaxConns: budget, RefuseSlots: refuse}
	if f.maxConns > 0 {
		if f.maxConns > budget {
			return lim, fmt.Errorf("--max-conns %d is over the %d HTTP connections the descriptor limit leaves "+
				"(soft limit %d, %d open, half kept for NATS, JetStream and pebble): raise the limit or lower the flag",
				f.maxConns, budget, soft, open)
		}
		lim.MaxConns = f.maxConns
	}
	lim.MaxConnsPerIP = defaultPerIP(lim.MaxConns)
	if f.maxConnsPerIP > 0 {
		if f.maxConnsPerIP > lim.MaxConns {
			return lim, fmt.Errorf("--max-conns-per-ip %d is over the %d HTTP connections in all", f.maxConnsPerIP, lim.MaxConns)
		}
		lim.MaxConnsPerIP = f.maxConnsPerIP
	}
	return lim, nil
}

// genesis reads the initial members and the constitution named by flags.
func (f *serveFlags) genesis() ([]gov.InitialMember, string, error) {
	var members []gov.InitialMember
	for _, path := range f.memberCerts {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, "", err
		}
		members = append(members, gov.InitialMember{CertPEM: b})
	}
	if f.constitutionDir == "" {
		return members, "", nil
	}
	files := map[string]string{}
	entries, err := os.ReadDir(f.constitutionDir)
	if err != nil {
		return nil, "", err
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".js") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(f.constitutionDir, e.Name()))
		if err != nil {
			return nil, "", err
		}
		files[e.Name()] = string(b)
	}
	module, err := constitution.Bundle(files)
	if err != nil {
		return nil, "", fmt.Errorf("constitution %s: %w", f.constitutionDir, err)
	}
	return members, module, nil
}

func runServe(args []string, out, errOut io.Writer) int {
	fs := newFlags("serve", errOut)
	var f serveFlags
	f.register(fs)
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(errOut, fs, "unexpected arguments %v", pos)
	}
	if err := constitution.CheckSafetyNet(f.scripts); err != nil {
		return usageError(errOut, fs, "%v", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageError(errOut, fs, "bad --log-level %q", f.logLevel)
	}
	if err := f.validate(); err != nil {
		return usageError(errOut, fs, "%v", err)
	}
	logger := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, f, logger); err != nil {
		logger.Error("serve", slog.Any("err", err))
		return exitFailed
	}
	return exitOK
}

// endpoints is DIR/endpoints.json: where a running replica listens.
type endpoints struct {
	HTTP    string `json:"http"`
	NATS    string `json:"nats"`
	Cluster string `json:"cluster,omitempty"` // the NATS route listener of a clustered replica
}

// serve starts a replica. Before anything in the data folder is written:
// the descriptor limit, the folder's lock, the HTTP listener and (in
// replica.Open) a check of the NATS port, so a busy folder or port fails at
// once with its name.
func serve(ctx context.Context, f serveFlags, logger *slog.Logger) error {
	soft, hard, err := setFDLimit(f.fdLimit)
	if err != nil {
		return err
	}
	lock, err := replica.LockDir(f.data, "gavel serve", true)
	if err != nil {
		return err
	}
	defer lock.Release()
	ln, err := net.Listen("tcp", f.httpListen)
	if err != nil {
		return fmt.Errorf("http listener %s: %w", f.httpListen, err)
	}
	defer ln.Close()
	open := openFDs()
	connLimits, err := f.connLimits(soft, open)
	if err != nil {
		return err
	}
	_, _, natsConns := connBudget(soft, open)
	if f.natsMaxConns > 0 {
		natsConns = f.natsMaxConns
	}
	logger.Info("descriptors", slog.Uint64("soft_limit", soft), slog.Uint64("hard_limit", hard),
		slog.Int("open", open), slog.Int("headroom", int(soft)-open),
		slog.Int("http_max_conns", connLimits.MaxConns), slog.Int("http_max_conns_per_ip", connLimits.MaxConnsPerIP),
		slog.Int("nats_max_conns", natsConns),
		slog.Int("reserved_for_nats_and_pebble", int(soft)-open-connLimits.MaxConns-connLimits.RefuseSlots))
	logger.Info("http listening", slog.String("http", "http://"+ln.Addr().String()))
	members, module, err := f.genesis()
	if err != nil {
		return err
	}
	var devRoot []byte
	if f.devSNPRoot != "" {
		if _, err := devsnp.LoadRoot(f.devSNPRoot); err != nil {
			return fmt.Errorf("--dev-snp-root: %w", err)
		}
		if devRoot, err = os.ReadFile(f.devSNPRoot); err != nil {
			return err
		}
	}
	bootMembers, nm, err := loadNetworkGenesis(f.data) // gavel bootstrap's network
	if err != nil {
		return err
	}
	if len(members) == 0 {
		members = bootMembers
	}
	nm.MaxAge = f.mapMaxAge
	metrics := handlers.NewMetrics()
	defer constitution.Observe(metrics.ObserveCall)()
	f.seq.OnRound = metrics.ObserveRound
	cfg := replica.Config{DataDir: f.data, NATSListen: f.natsListen, NATSMaxConnections: natsConns, Sequencer: f.seq, Logger: logger,
		Members: members, ConstitutionModule: module, MaxGovRequestBytes: f.limits.MaxGovBytes, ScriptLimits: f.scripts,
		Lock: lock, DevSNPRoot: devRoot, Netmap: nm,
		OnCommit: func(c replica.CommitReport) { metrics.ObserveCommit(c.Kind, c.Took, c.Err) }}
	var r *replica.Replica
	switch {
	case f.join != "" && replica.Rejoining(f.data):
		// Trusted before: it restarts on its folder's routes and keys.
		cfg.Cluster = &replica.ClusterConfig{Listen: f.clusterListen, CodeVersion: f.code}
		if r, err = replica.Open(ctx, cfg); err != nil {
			return err
		}
	case f.join != "":
		if r, err = serveJoin(ctx, f, cfg, ln, lock, logger); err != nil || r == nil {
			return err
		}
	default:
		if f.cluster {
			cfg.Cluster = &replica.ClusterConfig{Listen: f.clusterListen, CodeVersion: f.code, Witness: true}
		}
		if f.nats != "" {
			if cfg.External, cfg.StreamReplicas, err = serveExternal(ctx, f, logger); err != nil {
				return err
			}
		}
		if r, err = replica.Open(ctx, cfg); err != nil {
			return err
		}
	}
	defer r.Close()
	ep := endpoints{HTTP: "http://" + ln.Addr().String(), NATS: r.NATSURL(), Cluster: r.ClusterURL()}
	logger.Info("serving", slog.String("http", ep.HTTP), slog.String("nats", ep.NATS), slog.String("cluster", ep.Cluster),
		slog.String("data", f.data), slog.String("client_creds", filepath.Dir(r.ClientCredsFile(natslog.UserMember))))

	natsCfg := handlers.DefaultNATSConfig(f.seq.QueueSize, f.limits)
	natsCfg.HasInterest = r.HasInterest
	natsSrv, err := handlers.ServeNATS(r.HandlerConn(), r, f.limits, natsCfg, logger)
	if err != nil {
		return err
	}
	defer natsSrv.Stop()
	edge := handlers.NewListener(ln, connLimits, logger)
	httpHandler := handlers.NewHTTP(r, f.limits, logger)
	httpHandler.ReportConnections(edge)
	httpHandler.UseMetrics(metrics)
	httpSrv := handlers.NewServer(httpHandler, logger)
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(edge) }()

	epPath := filepath.Join(f.data, "endpoints.json")
	b, _ := json.Marshal(ep)
	if err := os.WriteFile(epPath+".tmp", b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(epPath+".tmp", epPath); err != nil {
		return err
	}
	defer os.Remove(epPath)

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case <-r.Retired():
		logger.Info("retired: the members retired this replica and its server has left the cluster; shutting down")
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.HandOff(shutdownCtx); err != nil {
		logger.Warn("primary-ship was not handed over; the lease runs out instead", slog.Any("err", err))
	}
	return httpSrv.Shutdown(shutdownCtx)
}

// joinPoll is how often a Pending joiner asks whether it is Trusted.
const joinPoll = 500 * time.Millisecond

// serveJoin adds a replica to the clustered service at --join: its server
// joins the cluster, the node joins as a service node and waits, serving
// nothing and writing nothing (no endpoints.json), until members trust it;
// then it opens as a replica like the others (a follower until it holds
// the lease). nil, nil: stopped while Pending.
func serveJoin(ctx context.Context, f serveFlags, cfg replica.Config, ln net.Listener, lock *replica.DirLock, logger *slog.Logger) (*replica.Replica, error) {
	j, err := replica.Join(ctx, replica.JoinConfig{URL: f.join, DataDir: f.data, NATSListen: f.natsListen, Lock: lock, Logger: logger,
		Address: ln.Addr().String(), Cluster: replica.ClusterConfig{Listen: f.clusterListen, CodeVersion: f.code}})
	if err != nil {
		return nil, err
	}
	defer j.Close() // stops nothing once the replica runs on what it joined with
	logger.Info("joined", slog.String("node_id", j.NodeID), slog.String("status", j.Status), slog.String("cluster", j.ClusterURL()))
	if err := j.WaitTrusted(ctx, joinPoll); err != nil {
		if ctx.Err() != nil {
			logger.Info("shutting down")
			return nil, nil
		}
		return nil, err
	}
	return replica.OpenJoined(ctx, j, cfg)
}

// scriptSafetyFlags registers the script safety-net flags (serve, audit
// replay).
func scriptSafetyFlags(fs *flag.FlagSet, l *constitution.Limits) {
	fs.DurationVar(&l.Timeout, "script-timeout", l.Timeout, fmt.Sprintf("wall-clock safety net of one constitution or ballot call (%v to %v); the budget itself is ledger state", constitution.MinTimeout, constitution.MaxTimeout))
	fs.Uint64Var(&l.MaxHeapGrowth, "script-heap", l.MaxHeapGrowth, fmt.Sprintf("heap growth safety net of one script call, bytes (%d to %d)", constitution.MinHeapGrowth, constitution.MaxHeapGrowthCap))
}

// serveExternal checks the NATS cluster at --nats before anything is
// written to the data folder or the cluster: the --creds user may write
// gavel's ledger and manage its streams ($SYS.REQ.USER.INFO), and the
// servers (surveyed by a system account user) sync every write, run
// nats-server ≥ natslog.MinServerVersion and are three JetStream servers
// (or fewer with --allow-small-cluster). It returns the replica's NATS and
// its streams' copies.
func serveExternal(ctx context.Context, f serveFlags, logger *slog.Logger) (*replica.ExternalNATS, int, error) {
	connect := func(flag, creds string) (*nats.Conn, error) {
		auth, err := natslog.ConnectOptions(creds)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		nc, err := nats.Connect(f.nats, auth, nats.Name("gavel-check"), nats.MaxReconnects(0))
		if err != nil {
			return nil, fmt.Errorf("--nats %s with %s %s: %w", f.nats, flag, creds, err)
		}
		return nc, nil
	}
	nc, err := connect("--creds", f.creds)
	if err != nil {
		return nil, 0, err
	}
	defer nc.Close()
	if err := natslog.CheckLedgerRights(ctx, nc); err != nil {
		return nil, 0, fmt.Errorf("--creds %s: %w", f.creds, err)
	}
	sys, sysFlag := nc, "--creds"
	if f.systemCreds != "" {
		sysFlag = "--system-creds"
		if sys, err = connect(sysFlag, f.systemCreds); err != nil {
			return nil, 0, err
		}
		defer sys.Close()
	}
	servers, err := natslog.CheckExternal(ctx, sys, f.allowSmallCluster)
	if err != nil && len(servers) == 0 {
		return nil, 0, fmt.Errorf("cannot survey the NATS cluster's servers as the %s user (give --system-creds, a system account user): %w", sysFlag, err)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("the NATS cluster at %s is refused: %w", f.nats, err)
	}
	js := natslog.JetStreamServers(servers)
	logger.Info("external NATS checked", slog.String("nats", f.nats), slog.Int("jetstream_servers", js), slog.Bool("allow_small_cluster", f.allowSmallCluster))
	return &replica.ExternalNATS{URL: f.nats, Creds: f.creds}, min(js, replica.ReplicatedReplicas), nil
}

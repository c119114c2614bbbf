package natslog

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine"
)

// DefaultListen is where the embedded server takes clients by default.
const DefaultListen = "127.0.0.1:4222"

// routeTLSTimeout bounds a route's TLS handshake.
const routeTLSTimeout = 2 * time.Second

// readyTimeout bounds how long StartEmbedded waits for the listeners.
const readyTimeout = 10 * time.Second

// EmbeddedConfig configures an in-process NATS server with JetStream.
type EmbeddedConfig struct {
	// DataDir holds the users' seeds and infos (<user>.nk, <user>.json)
	// and, under DataDir/nats, the JetStream file store.
	DataDir string
	// Listen is host:port for clients; DefaultListen if empty. Port 0 picks
	// a free port; ClientURL reports it.
	Listen string
	// ServerName must be unique in a cluster and stable across restarts
	// (JetStream identifies peers by it). Defaults to "gavel" standalone.
	ServerName string
	// Logger receives the server's log; nil keeps it silent.
	Logger *slog.Logger
	// Cluster routes this server to others; nil runs standalone.
	Cluster *ClusterConfig
	// ClientKeys are more public user nkeys per client kind, each given
	// that kind's permissions (and inbox prefix).
	ClientKeys map[User][]string
	// MaxPayload is the largest message in bytes; 0 keeps the server's 1 MiB.
	MaxPayload int32
	// MaxConnections caps client connections (the replica's own included);
	// 0 means DefaultMaxConnections. A flood of connections is refused at
	// the cap instead of exhausting the process's descriptors.
	MaxConnections int

	// Tags are the server's placement tags (TagWitness keeps streams off it).
	Tags []string
	// MaxStore and MaxMemory are JetStream's storage limits in bytes. A
	// cluster sets them explicitly and equal on every server: placement
	// prefers the server with the most free room, and dynamic limits steer
	// replacements to old servers (shared/notes/jetstream-replication.md).
	MaxStore, MaxMemory int64
	// System admits one more user, in the system account, from
	// DataDir/system.nk: the server's own in-process management connection
	// (removing a server, moving the meta leader). It is never handed out.
	System bool
	// PeerKeys are other replicas' users, any kind, admitted with that
	// kind's permissions: every server of a cluster accepts every Trusted
	// replica's users (the keys come from the ledger).
	PeerKeys map[User][]string
	// Pending takes the write rights from the replica's own sequencer and
	// feed users: a joining replica writes nothing until it is Trusted.
	Pending bool
}

// DefaultMaxConnections is the embedded server's connection cap.
const DefaultMaxConnections = 1024

// ClusterConfig makes the embedded server one peer of a routed JetStream
// cluster. Routes are nats-route://host:port URLs of the peers; listing this
// server's own route is harmless.
type ClusterConfig struct {
	Name   string
	Listen string
	Routes []string
	// Advertise is the host:port the other servers are told to dial for
	// this one's routes; empty, the route listener's. (Tests put a
	// fault-injecting proxy there.)
	Advertise string
	// Auth makes the routes mutual TLS admitting pinned keys only
	// (routeauth.go); nil: anyone who reaches Listen may route in.
	Auth *RouteAuth
}

// Embedded is a running in-process NATS server.
type Embedded struct {
	srv   *server.Server
	seeds Seeds
	cfg   EmbeddedConfig
	opts  *server.Options // as started; Reload derives the next from it
	sys   string          // the system user's public key, or ""
	// ownPin is the pin of the server's route certificate ("" without
	// route auth).
	ownPin string
	// reload serializes the reloads (Reload, Retag, SetRoutePins): each
	// derives the next options from opts.
	reload sync.Mutex
}

// StartEmbedded starts the server and waits until it takes connections.
// JetStream runs with SyncAlways: a message is fsynced before it is acked.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	opts, seeds, err := serverOptions(cfg)
	if err != nil {
		return nil, err
	}
	started := *opts
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, "InvalidNatsConfig", err, "cannot configure the embedded NATS server")
	}
	if cfg.Logger != nil {
		srv.SetLoggerV2(slogAdapter{cfg.Logger}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		clientUp, routesUp := srv.Addr() != nil, cfg.Cluster == nil || srv.ClusterAddr() != nil
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, engine.Errorf(engine.KindUnavailable, "NatsNotReady",
			"embedded NATS server not ready after %s (client listener up: %v, route listener up: %v)", readyTimeout, clientUp, routesUp)
	}
	e := &Embedded{srv: srv, seeds: seeds, cfg: cfg, opts: &started, sys: systemKey(opts)}
	if a := cfg.Cluster.routeAuth(); a != nil {
		e.ownPin = PinOf(opts.Cluster.TLSConfig.Certificates[0].Leaf)
	}
	return e, nil
}

// serverOptions is the pure translation of EmbeddedConfig (plus the seeds
// on disk) into nats-server options.
func serverOptions(cfg EmbeddedConfig) (*server.Options, Seeds, error) {
	if cfg.DataDir == "" {
		return nil, Seeds{}, engine.Errorf(engine.KindInvalid, "InvalidNatsConfig", "DataDir is required")
	}
	host, port, err := splitListen(cfg.Listen, DefaultListen)
	if err != nil {
		return nil, Seeds{}, err
	}
	seeds, err := LoadOrCreateSeeds(cfg.DataDir)
	if err != nil {
		return nil, Seeds{}, err
	}
	users, err := serverUsers(cfg, seeds)
	if err != nil {
		return nil, Seeds{}, err
	}
	name := cfg.ServerName
	if name == "" {
		if cfg.Cluster != nil {
			return nil, Seeds{}, engine.Errorf(engine.KindInvalid, "InvalidNatsConfig", "a clustered server needs a unique ServerName")
		}
		name = "gavel"
	}
	opts := &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		Nkeys:      users,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "nats"),
		SyncAlways: true,
		// No HTTP monitor (HTTPPort 0), no signal handlers: the process is gavel's.
		NoSigs:                 true,
		NoLog:                  cfg.Logger == nil,
		DisableJetStreamBanner: true,
		MaxPayload:             cfg.MaxPayload,
		MaxConn:                cfg.MaxConnections,
		Tags:                   cfg.Tags,
		JetStreamMaxStore:      cfg.MaxStore,
		JetStreamMaxMemory:     cfg.MaxMemory,
	}
	if cfg.System {
		if err := addSystemUser(opts, cfg.DataDir); err != nil {
			return nil, Seeds{}, err
		}
	}
	if opts.MaxConn <= 0 {
		opts.MaxConn = DefaultMaxConnections
	}
	if cfg.Cluster != nil {
		if cfg.Cluster.Name == "" {
			return nil, Seeds{}, engine.Errorf(engine.KindInvalid, "InvalidNatsConfig", "a cluster needs a name")
		}
		chost, cport, err := splitListen(cfg.Cluster.Listen, "127.0.0.1:6222")
		if err != nil {
			return nil, Seeds{}, err
		}
		// One route connection per pair (no pooling) keeps a consumer's interest
		// ahead of the API reply that names it; pooled routes can reorder them
		// and strand a new consumer's first pull request.
		opts.Cluster = server.ClusterOpts{Name: cfg.Cluster.Name, Host: chost, Port: cport, PoolSize: -1, Advertise: cfg.Cluster.Advertise}
		for _, r := range cfg.Cluster.Routes {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				return nil, Seeds{}, engine.Errorf(engine.KindInvalid, "InvalidNatsConfig", "route %q is not a nats-route://host:port URL", r)
			}
			opts.Routes = append(opts.Routes, u)
		}
		if a := cfg.Cluster.Auth; a != nil {
			if opts.Cluster.TLSConfig, opts.Cluster.TLSPinnedCerts, err = routeTLS(a); err != nil {
				return nil, Seeds{}, err
			}
			opts.Cluster.TLSTimeout = routeTLSTimeout.Seconds()
		}
	}
	return opts, seeds, nil
}

// splitListen parses host:port; port 0 becomes nats-server's "random port".
func splitListen(listen, fallback string) (string, int, error) {
	if listen == "" {
		listen = fallback
	}
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, engine.Wrap(engine.KindInvalid, "InvalidNatsConfig", err, "listen address %q", listen)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, engine.Errorf(engine.KindInvalid, "InvalidNatsConfig", "listen address %q has a bad port", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// Server is the underlying nats-server, for tests and health checks.
func (e *Embedded) Server() *server.Server { return e.srv }

// Seeds are the users this server admits.
func (e *Embedded) Seeds() Seeds { return e.seeds }

// ClientURL is nats://host:port of the client listener, with the actual
// port; an all-interfaces listener is reported as 127.0.0.1.
func (e *Embedded) ClientURL() string {
	addr, ok := e.srv.Addr().(*net.TCPAddr)
	if !ok {
		return e.srv.ClientURL()
	}
	return "nats://" + reachable(addr)
}

// ClusterURL is nats-route://host:port of the route listener, or "".
func (e *Embedded) ClusterURL() string {
	addr := e.srv.ClusterAddr()
	if addr == nil {
		return ""
	}
	return "nats-route://" + reachable(addr)
}

func reachable(addr *net.TCPAddr) string {
	ip := addr.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))
}

// ConnectReplica opens an in-process connection as the sequencer's user:
// the one that writes the ledger and manages the streams.
func (e *Embedded) ConnectReplica(opts ...nats.Option) (*nats.Conn, error) {
	return e.ConnectService(UserSequencer, opts...)
}

// ConnectService opens an in-process connection as one of the service's
// users (UserSequencer, UserFeeds, UserHandler), with its inbox prefix.
func (e *Embedded) ConnectService(u User, opts ...nats.Option) (*nats.Conn, error) {
	if u.IsClient() {
		return nil, engine.Errorf(engine.KindInvalid, "InvalidCredentials", "%s is a client kind, not a service user", u)
	}
	auth, err := ConnectOptions(e.seeds.File(u))
	if err != nil {
		return nil, err
	}
	all := append([]nats.Option{nats.InProcessServer(e.srv), auth, nats.Name("gavel-" + string(u))}, opts...)
	nc, err := nats.Connect(e.ClientURL(), all...)
	if err != nil {
		return nil, unavailable(err, "cannot connect to the embedded NATS server")
	}
	return nc, nil
}

// ConnectClient opens a TCP connection to ClientURL as the client kind u,
// from its seed and info files as any client would.
func (e *Embedded) ConnectClient(u User, opts ...nats.Option) (*nats.Conn, error) {
	if !u.IsClient() {
		return nil, engine.Errorf(engine.KindInvalid, "InvalidCredentials", "%s is not a client kind", u)
	}
	auth, err := ConnectOptions(e.seeds.File(u))
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(e.ClientURL(), append([]nats.Option{auth, nats.Name("gavel-" + string(u))}, opts...)...)
	if err != nil {
		return nil, unavailable(err, "cannot connect to %s", e.ClientURL())
	}
	return nc, nil
}

// HasInterest says whether any connection subscribes to subject, e.g.
// whether a requester is still there to read an answer.
func (e *Embedded) HasInterest(subject string) bool {
	return e.srv.GlobalAccount().SubscriptionInterest(subject)
}

// WaitJetStreamReady waits until JetStream can take API requests: at once
// standalone, once a meta leader is elected in a cluster.
func (e *Embedded) WaitJetStreamReady(ctx context.Context) error {
	if !e.srv.JetStreamIsClustered() {
		return nil
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if e.srv.JetStreamIsCurrent() {
			return nil
		}
		select {
		case <-ctx.Done():
			return engine.Wrap(engine.KindUnavailable, "NatsNotReady", ctx.Err(), "no JetStream meta leader")
		case <-tick.C:
		}
	}
}

// Shutdown stops the server and waits until it has stopped.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// slogAdapter routes nats-server's log to slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any) {
	if msg := fmt.Sprintf(format, v...); !strings.HasPrefix(msg, insecureRouteWarning) {
		a.l.Warn(msg)
	}
}
func (a slogAdapter) Fatalf(format string, v ...any) { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any) { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }

package natstest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine/natslog"
)

// ReadyTimeout bounds the wait for a JetStream meta leader.
const ReadyTimeout = 30 * time.Second

// Cluster is n embedded servers: standalone when n is 1, else a routed
// JetStream cluster. All share one set of seeds, so every user's
// credentials work at every server.
type Cluster struct {
	t       testing.TB
	Servers []*natslog.Embedded
	Configs []natslog.EmbeddedConfig
}

// Start starts n servers (1 or more; use 3 for R3 streams) and waits until
// JetStream takes requests. Everything stops at the end of the test.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: need at least one server, got %d", n)
	}
	c := &Cluster{t: t, Servers: make([]*natslog.Embedded, n), Configs: make([]natslog.EmbeddedConfig, n)}
	for i := range n {
		name := fmt.Sprintf("s%d", i)
		c.Configs[i] = natslog.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", ServerName: name, Logger: serverLogger(name), System: true}
	}
	// Registered after t.TempDir, so it runs first: servers stop before
	// their directories go.
	t.Cleanup(c.shutdown)
	if err := shareSeeds(c.Configs); err != nil {
		t.Fatalf("natstest: %v", err)
	}
	// A reserved route port can be taken before its server binds it: then
	// start the whole cluster again on fresh ports.
	var err error
	for range 3 {
		if err = c.startAll(); err == nil {
			break
		}
		c.shutdown()
	}
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	c.WaitReady()
	return c
}

// serverLogger shows a server's log on stderr when GAVEL_NATS_LOG is set
// (to a slog level: debug, info, warn, error); else the server is silent.
func serverLogger(name string) *slog.Logger {
	level := os.Getenv("GAVEL_NATS_LOG")
	if level == "" {
		return nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})).With("server", name)
}

// shareSeeds creates the seeds in the first data dir and copies them to
// the others.
func shareSeeds(cfgs []natslog.EmbeddedConfig) error {
	seeds, err := natslog.LoadOrCreateSeeds(cfgs[0].DataDir)
	if err != nil {
		return err
	}
	for _, cfg := range cfgs[1:] {
		for u := range seeds.Keys {
			src := seeds.File(u)
			b, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(cfg.DataDir, filepath.Base(src)), b, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// reserveRouteURLs finds n free 127.0.0.1 ports for the route listeners,
// which every server must know before any starts.
func reserveRouteURLs(n int) ([]string, error) {
	urls := make([]string, n)
	listeners := make([]net.Listener, n)
	defer func() {
		for _, l := range listeners {
			if l != nil {
				l.Close()
			}
		}
	}()
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners[i] = l
		urls[i] = "nats-route://" + l.Addr().String()
	}
	return urls, nil
}

func (c *Cluster) startAll() error {
	if n := len(c.Configs); n > 1 {
		routes, err := reserveRouteURLs(n)
		if err != nil {
			return err
		}
		for i := range c.Configs {
			listen := strings.TrimPrefix(routes[i], "nats-route://")
			c.Configs[i].Cluster = &natslog.ClusterConfig{Name: "gavel-test", Listen: listen, Routes: routes}
		}
	}
	for i := range c.Configs {
		e, err := natslog.StartEmbedded(c.Configs[i])
		if err != nil {
			return fmt.Errorf("start server %d: %w", i, err)
		}
		c.Servers[i] = e
	}
	return nil
}

func (c *Cluster) startServer(i int) {
	c.t.Helper()
	e, err := natslog.StartEmbedded(c.Configs[i])
	if err != nil {
		c.t.Fatalf("natstest: start server %d: %v", i, err)
	}
	c.Servers[i] = e
}

// WaitReady waits until every running server sees a JetStream meta leader
// and, in a cluster, the leader counts every running server as a peer.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	deadline := time.Now().Add(ReadyTimeout)
	for time.Now().Before(deadline) {
		if c.ready() {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	c.t.Fatalf("natstest: JetStream not ready after %s", ReadyTimeout)
}

func (c *Cluster) ready() bool {
	running, leaderPeers := 0, -1
	for _, e := range c.Servers {
		if e == nil {
			continue
		}
		running++
		s := e.Server()
		if !s.JetStreamIsCurrent() {
			return false
		}
		if s.JetStreamIsClustered() && s.JetStreamIsLeader() {
			leaderPeers = len(s.JetStreamClusterPeers())
		}
	}
	if len(c.Servers) == 1 {
		return running == 1
	}
	return leaderPeers == running
}

// Restart stops server i and starts it again on the same data dir.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.Stop(i)
	c.startServer(i)
	c.WaitReady()
}

// Stop shuts server i down; the others keep running.
func (c *Cluster) Stop(i int) {
	if e := c.Servers[i]; e != nil {
		e.Shutdown()
		c.Servers[i] = nil
	}
}

func (c *Cluster) shutdown() {
	for i := range c.Servers {
		c.Stop(i)
	}
}

// ConnectReplica connects to server i as the sequencer's user, the ledger
// writer (in process).
func (c *Cluster) ConnectReplica(i int) *nats.Conn {
	c.t.Helper()
	nc, err := c.Servers[i].ConnectReplica()
	return c.keep(nc, err)
}

// ConnectService connects to server i as a service user (in process).
func (c *Cluster) ConnectService(i int, u natslog.User, opts ...nats.Option) *nats.Conn {
	c.t.Helper()
	nc, err := c.Servers[i].ConnectService(u, opts...)
	return c.keep(nc, err)
}

// ConnectClient connects to server i as client kind u (over TCP).
func (c *Cluster) ConnectClient(i int, u natslog.User, opts ...nats.Option) *nats.Conn {
	c.t.Helper()
	nc, err := c.Servers[i].ConnectClient(u, opts...)
	return c.keep(nc, err)
}

func (c *Cluster) keep(nc *nats.Conn, err error) *nats.Conn {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("natstest: connect: %v", err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// JetStream wraps nc, failing the test if it cannot.
func (c *Cluster) JetStream(nc *nats.Conn) jetstream.JetStream {
	c.t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatalf("natstest: jetstream: %v", err)
	}
	return js
}

// EnsureStreams creates gavel's streams with as many replicas as servers
// (at most 3), connecting as the sequencer user of server 0.
func (c *Cluster) EnsureStreams() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	js := c.JetStream(c.ConnectReplica(0))
	if err := natslog.EnsureStreams(ctx, js, min(len(c.Servers), 3)); err != nil {
		c.t.Fatalf("natstest: streams: %v", err)
	}
}

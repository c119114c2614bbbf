package natslog_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/natslog/natstest"
)

// routeKey is a server's route identity: an Ed25519 key in a self-signed
// certificate, and its pin.
type routeKey struct {
	cert tls.Certificate
	pin  string
}

func newRouteKey(t testing.TB) routeKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "route"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pin := natslog.PinOf(leaf)
	if pin != engine.NodeID(pub) {
		t.Fatalf("a route pin %s is not the key's node id %s", pin, engine.NodeID(pub))
	}
	return routeKey{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, pin: pin}
}

// logWatch counts a server's log lines that contain a text.
type logWatch struct {
	mu    sync.Mutex
	text  string
	n     int
	grown chan struct{}
}

func newLogWatch(text string) *logWatch { return &logWatch{text: text, grown: make(chan struct{})} }

func (w *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *logWatch) WithGroup(string) slog.Handler            { return w }
func (w *logWatch) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, w.text) {
		w.mu.Lock()
		w.n++
		close(w.grown)
		w.grown = make(chan struct{})
		w.mu.Unlock()
	}
	return nil
}

// waitMore waits until more than n lines were logged and returns the count.
func (w *logWatch) waitMore(t *testing.T, n int) int {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		w.mu.Lock()
		got, grown := w.n, w.grown
		w.mu.Unlock()
		if got > n {
			return got
		}
		select {
		case <-grown:
		case <-deadline:
			t.Fatalf("never logged %q more than %d times", w.text, n)
		}
	}
}

func freeRoutes(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, "nats-route://"+l.Addr().String())
		l.Close()
	}
	return out
}

func startRouted(t testing.TB, name, listen string, routes []string, key routeKey, pins []string, logger *slog.Logger) *natslog.Embedded {
	t.Helper()
	var auth *natslog.RouteAuth
	if key.pin != "" {
		auth = &natslog.RouteAuth{Cert: key.cert, Pins: pins}
	}
	e, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", ServerName: name, Logger: logger,
		Cluster: &natslog.ClusterConfig{Name: "gavel-test", Listen: strings.TrimPrefix(listen, "nats-route://"), Routes: routes, Auth: auth}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Routes admit pinned keys only: a stranger with the right cluster name is
// refused (logged at the refusing server, never a meta peer); pinned (a
// Pending joiner), it routes in; unpinned again (retired), its routes are
// dropped at once and it cannot come back by its old key, under any name.
func TestRouteAuth(t *testing.T) {
	a, b, c := newRouteKey(t), newRouteKey(t), newRouteKey(t)
	refusals := newLogWatch("certificate not pinned")
	routes := freeRoutes(t, 2)
	sa := startRouted(t, "a", routes[0], routes, a, []string{b.pin}, slog.New(refusals))
	sb := startRouted(t, "b", routes[1], routes, b, []string{a.pin}, nil)
	waitFor(t, "a and b form a meta group", func() bool {
		peers, leader := sa.MetaPeers()
		return leader != "" && len(peers) == 2 && sb.Server().JetStreamIsCurrent()
	})
	if got := sa.RoutePins(); len(got) != 2 {
		t.Fatalf("a's pins %v: want b's and its own", got)
	}

	// A stranger that would admit everyone is refused by a.
	stranger := startRouted(t, "stranger", freeRoutes(t, 1)[0], routes[:1], c, []string{a.pin, b.pin}, nil)
	n := refusals.waitMore(t, 0)
	if sa.HasMetaPeer("stranger") || sa.Server().NumRoutes() != 1 || stranger.Server().NumRoutes() != 0 {
		t.Fatalf("the stranger got in: peers %v, a's routes %d, its routes %d", peers(sa), sa.Server().NumRoutes(), stranger.Server().NumRoutes())
	}

	// Pinned (a Pending joiner's key, from the ledger), it routes in.
	for _, s := range []struct {
		e    *natslog.Embedded
		pins []string
	}{{sa, []string{b.pin, c.pin}}, {sb, []string{a.pin, c.pin}}} {
		if err := s.e.SetRoutePins(s.pins); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the pinned joiner is a meta peer", func() bool {
		return sa.HasMetaPeer("stranger") && stranger.Server().NumRoutes() == 2
	})

	// Unpinned (retired and removed), its routes are dropped, and its old
	// key is refused again under a fresh name.
	for _, s := range []struct {
		e   *natslog.Embedded
		pin string
	}{{sa, b.pin}, {sb, a.pin}} {
		if err := s.e.SetRoutePins([]string{s.pin}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the retired server's routes are dropped", func() bool {
		return sa.Server().NumRoutes() == 1 && sb.Server().NumRoutes() == 1
	})
	n = refusals.waitMore(t, n) // its reconnect
	stranger.Shutdown()
	startRouted(t, "stranger-2", freeRoutes(t, 1)[0], routes[:1], c, []string{a.pin, b.pin}, nil)
	refusals.waitMore(t, n)
	if sa.HasMetaPeer("stranger-2") || sa.Server().NumRoutes() != 1 {
		t.Fatalf("the retired key got back in: peers %v, routes %d", peers(sa), sa.Server().NumRoutes())
	}
}

func peers(e *natslog.Embedded) []string {
	ps, _ := e.MetaPeers()
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestRouteAuthRefusesBadPins(t *testing.T) {
	k := newRouteKey(t)
	for _, pin := range []string{"", "xyz", strings.ToUpper(k.pin), k.pin[:62]} {
		_, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", ServerName: "x",
			Cluster: &natslog.ClusterConfig{Name: "n", Listen: "127.0.0.1:0", Routes: freeRoutes(t, 1), Auth: &natslog.RouteAuth{Cert: k.cert, Pins: []string{pin}}}})
		if err == nil {
			t.Errorf("pin %q accepted", pin)
		}
	}
	_, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", ServerName: "x",
		Cluster: &natslog.ClusterConfig{Name: "n", Listen: "127.0.0.1:0", Routes: freeRoutes(t, 1), Auth: &natslog.RouteAuth{}}})
	if err == nil {
		t.Error("route auth without a certificate accepted")
	}
}

// A server removed from its cluster while running has its JetStream
// disabled; nats-server would restart it on any reload and crash, so a
// reload of its users, tags or route pins is refused.
func TestNoReloadOfARemovedServer(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 3)
	sys, err := c.Servers[0].ConnectSystem()
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	gone := c.Servers[2]
	// Right after the cluster formed, a member change may still be under
	// way (10202): asked again until the removal is taken.
	waitFor(t, "the server removal is taken", func() bool {
		return natslog.RemoveServer(ctx, sys, gone.PeerID()) == nil
	})
	waitFor(t, "the removed server's JetStream is disabled", func() bool { return !gone.Server().JetStreamEnabled() })
	if err := gone.Reload(nil, false); !errors.Is(err, natslog.ErrJetStreamDisabled) {
		t.Fatalf("reload of users: %v", err)
	}
	if err := gone.Retag([]string{"x"}); !errors.Is(err, natslog.ErrJetStreamDisabled) {
		t.Fatalf("retag: %v", err)
	}
	if err := c.Servers[1].Reload(nil, false); err != nil {
		t.Fatalf("a server still in the cluster: %v", err)
	}
}

// BenchmarkR3BatchRoutes is the cost of authenticated routes on the write
// path: atomic batches of 100 into an R3 ledger, routes plain or mutual
// TLS (every replicated message crosses two routes).
func BenchmarkR3BatchRoutes(b *testing.B) {
	for _, tlsRoutes := range []bool{false, true} {
		b.Run(fmt.Sprintf("tls=%v", tlsRoutes), func(b *testing.B) {
			keys := []routeKey{{}, {}, {}}
			if tlsRoutes {
				keys = []routeKey{newRouteKey(b), newRouteKey(b), newRouteKey(b)}
			}
			pins := []string{keys[0].pin, keys[1].pin, keys[2].pin}
			routes := freeRoutes(b, 3)
			var servers []*natslog.Embedded
			for i := range 3 {
				servers = append(servers, startRouted(b, fmt.Sprint("s", i), routes[i], routes, keys[i], pins, nil))
			}
			waitFor(b, "a meta group of three, JetStream current on each", func() bool {
				for _, e := range servers {
					if ps, leader := e.MetaPeers(); leader == "" || len(ps) != 3 || !e.Server().JetStreamIsCurrent() {
						return false
					}
				}
				return true
			})
			nc, err := servers[0].ConnectReplica()
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			ctx := context.Background()
			if err := natslog.EnsureStreams(ctx, js, 3); err != nil {
				b.Fatal(err)
			}
			p, err := natslog.NewPublisher(nc)
			if err != nil {
				b.Fatal(err)
			}
			batch := make([]natslog.Msg, 100)
			for i := range batch {
				batch[i] = natslog.Msg{Subject: natslog.BenchSubject, Data: benchPayload}
			}
			last := uint64(0)
			for b.Loop() {
				if last, err = p.PublishBatch(ctx, batch, last); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

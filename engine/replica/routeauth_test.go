package replica_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/projections"
)

// refusalLog tees a replica's log and counts route refusals in it.
type refusalLog struct {
	slog.Handler
	mu    *sync.Mutex
	n     *int
	grown *chan struct{}
}

func newRefusalLog() refusalLog {
	c := make(chan struct{})
	return refusalLog{Handler: testLogger().Handler(), mu: &sync.Mutex{}, n: new(int), grown: &c}
}

func (l refusalLog) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "certificate not pinned") {
		l.mu.Lock()
		*l.n++
		close(*l.grown)
		*l.grown = make(chan struct{})
		l.mu.Unlock()
	}
	return l.Handler.Handle(ctx, r)
}
func (l refusalLog) WithAttrs(a []slog.Attr) slog.Handler {
	return refusalLog{l.Handler.WithAttrs(a), l.mu, l.n, l.grown}
}
func (l refusalLog) WithGroup(g string) slog.Handler {
	return refusalLog{l.Handler.WithGroup(g), l.mu, l.n, l.grown}
}

// waitMore waits until more than n refusals were logged; it returns the count.
func (l refusalLog) waitMore(t *testing.T, n int) int {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		l.mu.Lock()
		got, grown := *l.n, *l.grown
		l.mu.Unlock()
		if got > n {
			return got
		}
		select {
		case <-grown:
		case <-deadline:
			t.Fatalf("no route refusal logged after %d", n)
		}
	}
}

// routeTo starts a server of the service's NATS cluster name routed to
// url, presenting key (and admitting the service's first replica).
func routeTo(t *testing.T, name, url string, key ed25519.PrivateKey, admit string) *natslog.Embedded {
	t.Helper()
	pub := key.Public()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	e, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", ServerName: name,
		Cluster: &natslog.ClusterConfig{Name: replica.DefaultClusterName, Listen: "127.0.0.1:0", Routes: []string{url},
			Auth: &natslog.RouteAuth{Cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, Pins: []string{admit}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

// A clustered replica's routes admit the ledger's service nodes only: a
// stranger with the right cluster name is refused (logged by the replica)
// and never a meta peer; a Pending joiner routes in; a retired node's
// routes are dropped once its server is removed, and its old key is
// refused under a fresh server name.
func TestClusterRoutesAuthenticated(t *testing.T) {
	ctx := context.Background()
	refusals := newRefusalLog()
	s := startServiceLogged(t, slog.New(refusals))
	first := s.r.Node().ID

	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	stranger := routeTo(t, "stranger", s.r.ClusterURL(), strangerKey, first)
	n := refusals.waitMore(t, 0)
	if s.r.HasClusterPeer("stranger") || stranger.Server().NumRoutes() != 0 {
		t.Fatalf("a stranger routed in: peers %v", clusterPeerNames(s.r))
	}
	stranger.Shutdown() // from here on, a refusal is the retired node's

	j := s.join(t, "A") // returns once the meta leader counts its server
	if !s.r.HasClusterPeer(replica.ServerName(j.NodeID)) {
		t.Fatalf("the Pending joiner is not a meta peer: %v", clusterPeerNames(s.r))
	}
	// A Pending joiner admits the routes of those who join after it (it
	// follows the service's node list): the mesh stays full.
	k := s.join(t, "A")
	until(t, "the first joiner routes to the later one", func() bool {
		return slices.Contains(j.Embedded().RoutePins(), k.NodeID) && j.Embedded().Server().NumRoutes() == 3 // first, witness, k
	})
	s.trust(t, j)
	s.govern(t, `{"name":"remove_node","args":{"node_id":"`+j.NodeID+`"}}`)
	until(t, "the retired node's server is removed", func() bool {
		rm, _, err := s.r.RemovableNodes(ctx, projections.Page{})
		return err == nil && len(rm) == 1
	})
	n = refusals.waitMore(t, n) // its route dropped: the retired server's reconnect is refused
	j.Embedded().Shutdown()
	rejoin := routeTo(t, "rejoin", s.r.ClusterURL(), j.Node().Key, first)
	refusals.waitMore(t, n+1) // two more: one at most was the stopped server's last try
	if s.r.HasClusterPeer("rejoin") || rejoin.Server().NumRoutes() != 0 {
		t.Fatalf("a retired key routed back in: peers %v", clusterPeerNames(s.r))
	}
}

func clusterPeerNames(r *replica.Replica) []string {
	peers, _ := r.ClusterPeers()
	return peerNames(peers)
}

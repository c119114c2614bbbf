package replica_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/handlers"
	"github.com/gavelhq/gavel/projections"
)

// service is a clustered first replica behind HTTP, and its first member.
type service struct {
	r      *replica.Replica
	dir    string
	url    string
	c      *client.Client
	member *govreq.Member
}

func startService(t *testing.T) *service {
	t.Helper()
	return startServiceLogged(t, testLogger())
}

func startServiceLogged(t *testing.T, logger *slog.Logger) *service {
	t.Helper()
	s := &service{dir: t.TempDir()}
	s.r = openFirstLogged(t, s.dir, logger)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handlers.NewHTTP(s.r, handlers.DefaultLimits(), testLogger()), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s.url = "http://" + ln.Addr().String()
	s.c = client.New(s.url)
	certPEM, _ := os.ReadFile(filepath.Join(s.dir, replica.Member0CertFile))
	keyPEM, _ := os.ReadFile(filepath.Join(s.dir, replica.Member0KeyFile))
	if s.member, err = govreq.LoadMember(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *service) govern(t *testing.T, actions string) {
	t.Helper()
	ctx := context.Background()
	p, _, err := s.c.Propose(ctx, s.member, []byte(`{"actions":[`+actions+`]}`))
	if err == nil && p.State == "Open" {
		p, _, err = s.c.Vote(ctx, s.member, p.ProposalID, client.AcceptBallot)
	}
	if err != nil || p.State != "Accepted" {
		t.Fatalf("%s: %v %v", actions, p, err)
	}
}

func (s *service) join(t *testing.T, code string) *replica.Joiner {
	t.Helper()
	j, err := replica.Join(context.Background(), replica.JoinConfig{URL: s.url, DataDir: t.TempDir(), NATSListen: "127.0.0.1:0",
		Cluster: replica.ClusterConfig{Listen: "127.0.0.1:0", CodeVersion: code}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.Close)
	return j
}

func (s *service) trust(t *testing.T, j *replica.Joiner) {
	t.Helper()
	s.govern(t, `{"name":"transition_node_to_trusted","args":{"node_id":"`+j.NodeID+`"}}`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := j.WaitTrusted(ctx, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// joined is a Trusted joiner's replica behind HTTP.
type joined struct {
	r   *replica.Replica
	url string
}

// open opens a Trusted joiner's replica: it follows the ledger and leads
// when it holds the lease.
func (s *service) open(t *testing.T, j *replica.Joiner) joined {
	t.Helper()
	seq := sequencer.DefaultConfig()
	seq.SignInterval = 10 * time.Millisecond
	r, err := replica.OpenJoined(context.Background(), j, replica.Config{Sequencer: seq, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return joined{r: r, url: httpServer(t, handlers.NewHTTP(r, handlers.DefaultLimits(), testLogger()))}
}

// until waits for cond, failing the test after a minute (a bound for a
// stuck cluster, not a timed assertion).
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The first replica starts clustered with its witness; replicas join one
// at a time as Pending service nodes that can write nothing and hold no
// service key; trusted, each gets the service key sealed to it and every
// server admits its users; with three the streams go R3 on the Trusted
// replicas' servers (never on a Pending one's) and the witness leaves; a fourth joins on code B (trusted by add_virtual_host_data);
// retiring the third moves its stream replicas to the fourth and removes
// its server by peer id before it is removable.
func TestClusterJoinReplicateRetire(t *testing.T) {
	ctx := context.Background()
	s := startService(t)

	j2 := s.join(t, "A")
	if j2.Status != "Pending" {
		t.Fatalf("joined as %s", j2.Status)
	}
	pending, _, err := s.r.NodeList(ctx, "Pending", "", projections.Page{})
	if err != nil || len(pending) != 1 || pending[0].NodeID != j2.NodeID || pending[0].Role != "service" {
		t.Fatalf("pending nodes %v, %v", pending, err)
	}
	// Pending: no write rights on its own server, and no service key.
	violations := make(chan error, 4)
	nc, err := j2.Embedded().ConnectService(natslog.UserSequencer, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish(natslog.LedgerSubject("statement"), []byte("from a pending replica")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("a pending replica's ledger write: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a pending replica's ledger write was not refused")
	}
	if _, err := os.Stat(filepath.Join(dirOf(t, j2), replica.ServiceCertFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a pending joiner holds the service identity: %v", err)
	}

	s.trust(t, j2)
	checkServiceKey(t, s.dir, dirOf(t, j2))
	f2 := s.open(t, j2)
	// Every server admits every Trusted replica's users: the joiner's
	// member user at the first replica's server.
	until(t, "the first replica's server admits the joiner's member user", func() bool {
		auth, err := natslog.ConnectOptions(f2.r.ClientCredsFile(natslog.UserMember))
		if err != nil {
			t.Fatal(err)
		}
		c, err := nats.Connect(s.r.NATSURL(), auth)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	// A Pending joiner's server is a meta peer but never gets a replica.
	s.join(t, "A")
	j3 := s.join(t, "A")
	s.trust(t, j3)
	f3 := s.open(t, j3)
	names := []string{replica.ServerName(s.r.Node().ID), replica.ServerName(j2.NodeID), replica.ServerName(j3.NodeID)}
	streamsOn := func(want []string) func() bool {
		return func() bool {
			for _, stream := range []string{natslog.LedgerStream, natslog.FeedsStream, "KV_GAVEL_LEASE"} {
				set, err := natslog.StreamPeerSet(ctx, f2.r.SequencerConn(), stream)
				if err != nil || !sameSet(peerNames(set), want) || slices.ContainsFunc(set, func(p natslog.Peer) bool { return !p.Current }) {
					return false
				}
			}
			return true
		}
	}
	until(t, "the ledger, feeds and lease run R3 on the three replicas' servers", streamsOn(names))
	until(t, "the witness leaves the meta group", func() bool {
		peers, leader := s.r.ClusterPeers()
		return leader != "" && len(peers) == 4 && !slices.ContainsFunc(peerNames(peers), func(n string) bool { return strings.HasSuffix(n, "-witness") })
	})
	if !s.r.IsPrimary() || f2.r.IsPrimary() || f3.r.IsPrimary() {
		t.Fatal("the first replica is not the only primary")
	}

	// Code B: members trust its host data, a B replica joins.
	s.govern(t, `{"name":"add_virtual_host_data","args":{"host_data":"`+replica.VirtualHostData("B")+`"}}`)
	j4 := s.join(t, "B")
	s.trust(t, j4)
	f4 := s.open(t, j4)
	s.govern(t, `{"name":"remove_node","args":{"node_id":"`+j3.NodeID+`"}}`)
	gone := replica.ServerName(j3.NodeID)
	until(t, "the retired replica's server holds no replica and left the cluster", func() bool {
		peers, _ := s.r.ClusterPeers()
		return streamsOn([]string{names[0], names[1], replica.ServerName(j4.NodeID)})() && !slices.Contains(peerNames(peers), gone)
	})
	until(t, "the retired replica is removable", func() bool {
		rm, _, err := s.r.RemovableNodes(ctx, projections.Page{})
		return err == nil && len(rm) == 1 && rm[0].NodeID == j3.NodeID
	})
	select {
	case <-f3.r.Retired():
	case <-time.After(time.Minute):
		t.Fatal("the retired replica never saw its retirement")
	}
	if err := s.r.DeleteNode(ctx, j3.NodeID); err != nil {
		t.Fatal(err)
	}

	// Retiring the primary: its last round holds its retirement, the
	// lease goes to a Trusted replica, which moves the streams off the
	// old primary's server (to a third B replica's) and removes it.
	j5 := s.join(t, "B")
	s.trust(t, j5)
	f5 := s.open(t, j5)
	first := s.r.Node().ID
	s.govern(t, `{"name":"remove_node","args":{"node_id":"`+first+`"}}`)
	until(t, "primary-ship moves to a Trusted replica", func() bool {
		n := 0
		for _, r := range []*replica.Replica{f2.r, f4.r, f5.r} {
			if r.IsPrimary() {
				n++
			}
		}
		return !s.r.IsPrimary() && n == 1
	})
	until(t, "the old primary's server holds no replica and left the cluster", func() bool {
		peers, _ := f2.r.ClusterPeers()
		return streamsOn([]string{names[1], replica.ServerName(j4.NodeID), replica.ServerName(j5.NodeID)})() && !slices.Contains(peerNames(peers), names[0])
	})
	until(t, "the old primary is removable", func() bool {
		rm, _, err := f4.r.RemovableNodes(ctx, projections.Page{})
		return err == nil && len(rm) == 1 && rm[0].NodeID == first
	})
	select {
	case <-s.r.Retired():
	case <-time.After(time.Minute):
		t.Fatal("the retired primary never saw its retirement")
	}
	if err := f4.r.DeleteNode(ctx, first); err != nil {
		t.Fatal(err)
	}
	// The service writes on, through either replica, with the new peer set.
	s.c = client.New(f4.url)
	s.govern(t, `{"name":"add_virtual_host_data","args":{"host_data":"`+replica.VirtualHostData("C")+`"}}`)
	(&trio{t: t, reps: []*replica.Replica{f2.r, f4.r, f5.r}}).converged()

	// A joined replica restarts from its folder (its routes and keys), as
	// any clustered replica does, asking no other replica first.
	last := f2.r.Store().Meta().Seqno
	f2.r.Close()
	if !replica.Rejoining(dirOf(t, j2)) {
		t.Fatal("a Trusted joiner's folder does not restart as a replica")
	}
	seq := sequencer.DefaultConfig()
	seq.SignInterval = 10 * time.Millisecond
	f2.r, err = replica.Open(ctx, replica.Config{DataDir: dirOf(t, j2), NATSListen: "127.0.0.1:0", Sequencer: seq, Logger: testLogger(),
		Cluster: &replica.ClusterConfig{Listen: "127.0.0.1:0", CodeVersion: "A"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f2.r.Close() })
	if got := f2.r.Store().Meta().Seqno; got < last {
		t.Fatalf("restarted at %d, was at %d", got, last)
	}
	s.govern(t, `{"name":"add_virtual_host_data","args":{"host_data":"`+replica.VirtualHostData("D")+`"}}`)
	(&trio{t: t, reps: []*replica.Replica{f2.r, f4.r, f5.r}}).converged()
}

func dirOf(t *testing.T, j *replica.Joiner) string {
	t.Helper()
	return j.DataDir()
}

func checkServiceKey(t *testing.T, serviceDir, joinerDir string) {
	t.Helper()
	// The same service and network-map keys: every replica signs roots
	// and maps alike.
	for _, f := range []string{replica.ServiceCertFile, "service_key.pem", replica.MapCertFile, "network_map_key.pem"} {
		a, _ := os.ReadFile(filepath.Join(serviceDir, f))
		b, err := os.ReadFile(filepath.Join(joinerDir, f))
		if err != nil || len(a) == 0 {
			t.Fatalf("%s: %v", f, err)
		}
		if string(a) != string(b) {
			t.Fatalf("the joiner's %s differs", f)
		}
	}
	if _, err := replica.LoadOrCreateIdentity(joinerDir, time.Now()); err != nil {
		t.Fatalf("the handed-over identity: %v", err)
	}
}

func peerNames(ps []natslog.Peer) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func sameSet(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(x string) bool { return !slices.Contains(b, x) })
}

// Bad joins change nothing: a URL that is no gavel service, one that is
// not clustered, a data folder of another service, and a replica on code
// the members never trusted.
func TestClusterJoinRefusals(t *testing.T) {
	ctx := context.Background()
	s := startService(t)
	join := func(url, dir, code string) error {
		j, err := replica.Join(ctx, replica.JoinConfig{URL: url, DataDir: dir, NATSListen: "127.0.0.1:0",
			Cluster: replica.ClusterConfig{Listen: "127.0.0.1:0", CodeVersion: code}, Logger: testLogger()})
		if err == nil {
			j.Close()
		}
		return err
	}
	other := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, `{"hello":"world"}`) }))
	if err := join(other, t.TempDir(), "A"); !errors.Is(err, replica.ErrNotAGavelService) {
		t.Fatalf("a URL that is not gavel: %v", err)
	}
	single, err := replica.Open(ctx, replica.Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	if err := join(httpServer(t, handlers.NewHTTP(single, handlers.DefaultLimits(), testLogger())), t.TempDir(), "A"); !errors.Is(err, replica.ErrNotClustered) {
		t.Fatalf("a single-replica service: %v", err)
	}
	foreign := t.TempDir()
	if _, err := replica.LoadOrCreateIdentity(foreign, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := join(s.url, foreign, "A"); !errors.Is(err, replica.ErrOtherService) {
		t.Fatalf("another service's data: %v", err)
	}
	err = join(s.url, t.TempDir(), "untrusted")
	if engine.AsError(err).Code != "InvalidQuote" {
		t.Fatalf("an untrusted code version: %v", err)
	}
	if nodes, _, _ := s.r.NodeList(ctx, "", "", projections.Page{}); len(nodes) != 1 {
		t.Fatalf("refused joins left nodes: %v", nodes)
	}
	// The join goes before the joiner's server routes: a refused one never
	// became a meta peer (the replica and its witness only).
	if peers := clusterPeerNames(s.r); len(peers) != 2 {
		t.Fatalf("refused joins left meta peers: %v", peers)
	}
}

func httpServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// A Pending joiner that restarts keeps its node, its server name and its
// seal key: its join is a poll, not a second node.
func TestClusterJoinerRestartsPending(t *testing.T) {
	ctx := context.Background()
	s := startService(t)
	dir := t.TempDir()
	cfg := replica.JoinConfig{URL: s.url, DataDir: dir, NATSListen: "127.0.0.1:0",
		Cluster: replica.ClusterConfig{Listen: "127.0.0.1:0", CodeVersion: "A"}, Logger: testLogger()}
	j, err := replica.Join(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, name, seal := j.NodeID, j.Embedded().Name(), readFile(t, filepath.Join(dir, "seal_privk.bin"))
	j.Close()
	if j, err = replica.Join(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.NodeID != id || j.Status != "Pending" || j.Embedded().Name() != name || readFile(t, filepath.Join(dir, "seal_privk.bin")) != seal {
		t.Fatalf("after a restart: node %s (%s), server %s", j.NodeID, j.Status, j.Embedded().Name())
	}
	if pending, _, err := s.r.NodeList(ctx, "Pending", "", projections.Page{}); err != nil || len(pending) != 1 {
		t.Fatalf("pending nodes after a restart: %v, %v", pending, err)
	}
	if _, err := replica.OpenJoined(ctx, j, replica.Config{Logger: testLogger()}); engine.AsError(err).Code != replica.CodeNotTrusted {
		t.Fatalf("a Pending joiner opened a replica: %v", err)
	}
	s.trust(t, j)
	checkServiceKey(t, s.dir, dir)
	f := s.open(t, j)
	j.Close() // stops nothing now
	if !s.r.HasClusterPeer(name) || f.r.IsPrimary() {
		t.Fatal("the joined replica is not a following peer")
	}
	// It follows: a write through it lands on the primary and it reads it.
	s.govern(t, `{"name":"add_virtual_host_data","args":{"host_data":"`+replica.VirtualHostData("B")+`"}}`)
	(&trio{t: t, reps: []*replica.Replica{s.r, f.r}}).converged()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

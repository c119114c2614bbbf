package replica

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/nodes"
	"github.com/gavelhq/gavel/handlers"
	"github.com/gavelhq/gavel/projections"
)

// ClusterConfig makes a replica one server of a routed JetStream cluster
// (gavel serve --cluster or --join). A replica that will ever be
// replicated runs clustered from its first day: JetStream deletes a
// standalone store restarted in cluster mode.
type ClusterConfig struct {
	// Listen is the route listener (host:port; port 0 picks one, kept in
	// DATA/cluster.json for restarts).
	Listen string
	// Routes are the seeds to route to (a joiner's: from the service it
	// joins); the routes of earlier starts are kept in DATA/cluster.json.
	Routes []string
	// Name is the NATS cluster's name; DefaultClusterName if empty.
	Name string
	// CodeVersion tags the server (natslog.CodeVersionTag) and, in virtual
	// mode, is the host data's preimage (VirtualHostData).
	CodeVersion string
	// Witness starts the in-process meta-only witness beside the first
	// replica, until three replicas are peers.
	Witness bool
	// MaxStore and MaxMemory are the JetStream limits, equal on every
	// replica; 0 takes natslog's cluster defaults.
	MaxStore, MaxMemory int64
	// Streams are the streams the replication controller scales and moves
	// besides the ledger and the feeds (the lease bucket's, say).
	Streams []string
}

// DefaultClusterName is the NATS cluster name of gavel's replicas.
const DefaultClusterName = "gavel"

// ReplicatedReplicas is how many replicas the streams get once that many
// service nodes are Trusted.
const ReplicatedReplicas = 3

// ReplicaMeasurement is the virtual measurement every gavel replica
// declares; genesis of a clustered service trusts it, so a new code
// version needs only add_virtual_host_data.
var ReplicaMeasurement = hexSHA256("gavel replica")

// VirtualHostData is a replica's virtual host data: SHA-256 of its code
// version string, in hex.
func VirtualHostData(codeVersion string) string { return hexSHA256(codeVersion) }

func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// ServerName is the NATS server name of node id's replica. A node id is
// fresh for every node key, so a wiped replica rejoins under a new name
// (a removed name can never rejoin).
func ServerName(nodeID string) string { return "gavel-" + nodeID[:16] }

// clusterFile is DATA/cluster.json: what a clustered replica keeps across
// restarts.
const clusterFile = "cluster.json"

// Why a data folder cannot be opened in the mode asked for; nothing in it
// is changed.
var (
	// ErrStandaloneStore: JetStream deletes a standalone store's streams
	// when it restarts in cluster mode (nats-server issue 5467).
	ErrStandaloneStore = errors.New("the data folder holds a standalone replica's JetStream store, which cluster mode would delete; a standalone ledger becomes replicated only by a verified copy into a new service")
	// ErrClusteredStore: a clustered replica's store run standalone would
	// fork from its cluster.
	ErrClusteredStore = errors.New("the data folder belongs to a clustered replica: start it with --cluster (the first replica) or --join")
)

// natsStoreDir is where the embedded server keeps JetStream's files.
func natsStoreDir(dataDir string) string { return filepath.Join(dataDir, "nats", "nats") }

func checkNoStandaloneStore(dataDir string) error {
	if _, err := os.Stat(natsStoreDir(dataDir)); err == nil {
		return engine.Wrap(engine.KindInvalid, "StandaloneStore", ErrStandaloneStore, "%s", dataDir)
	}
	return nil
}

// checkNotClustered refuses to run a clustered replica's folder standalone.
func checkNotClustered(dataDir string) error {
	if _, err := os.Stat(filepath.Join(dataDir, clusterFile)); err == nil {
		return engine.Wrap(engine.KindInvalid, "ClusteredStore", ErrClusteredStore, "%s", dataDir)
	}
	return nil
}

type clusterState struct {
	Name           string   `json:"name"`
	ServerName     string   `json:"server_name"`
	Listen         string   `json:"listen"` // the route listener actually bound
	Routes         []string `json:"routes"`
	CodeVersion    string   `json:"code_version"`
	Witness        string   `json:"witness,omitempty"` // the witness's server name while it runs
	WitnessRemoved bool     `json:"witness_removed,omitempty"`
	Bootstrapped   bool     `json:"bootstrapped,omitempty"` // the meta term was raised once
	// RoutePins are the node ids whose servers the routes admitted when
	// last reconciled: what a restart admits until the ledger is read.
	RoutePins []string `json:"route_pins,omitempty"`
	// seenPeers are the servers this process saw in the meta group: only
	// their leaving, not their absence from a new server's partial view,
	// unpins a Retired node (routeauth.go).
	seenPeers map[string]bool
}

func loadClusterState(dir string) (clusterState, bool, error) {
	var s clusterState
	b, err := os.ReadFile(filepath.Join(dir, clusterFile))
	if errors.Is(err, fs.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, false, fmt.Errorf("%s: %w", clusterFile, err)
	}
	return s, true, nil
}

func (s clusterState) save(dir string) error {
	b, _ := json.MarshalIndent(s, "", "  ")
	return writeFileAtomic(filepath.Join(dir, clusterFile), append(b, '\n'), 0o644)
}

// ClusterNodeData is what a service node's join carries in its node_data
// (under "gavel_cluster"): its server, its route, the public keys of its
// NATS users (admitted by every server once it is Trusted) and the X25519
// key the service identity is sealed to.
type ClusterNodeData struct {
	ServerName string            `json:"server_name"`
	Route      string            `json:"route"`
	NATSUsers  map[string]string `json:"nats_users"`
	SealKey    string            `json:"seal_key,omitempty"` // base64, nacl/box
}

type nodeDataEnvelope struct {
	Cluster *ClusterNodeData `json:"gavel_cluster,omitempty"`
}

// clusterDataOf reads a node's ClusterNodeData, if it has any.
func clusterDataOf(raw json.RawMessage) (*ClusterNodeData, bool) {
	var env nodeDataEnvelope
	if len(raw) == 0 || json.Unmarshal(raw, &env) != nil || env.Cluster == nil || env.Cluster.ServerName == "" {
		return nil, false
	}
	return env.Cluster, true
}

// natsUsers are the public keys of the users of seeds, by kind.
func natsUsers(seeds natslog.Seeds) map[string]string {
	out := map[string]string{}
	for u, k := range seeds.Keys {
		out[string(u)] = k
	}
	return out
}

// clusterNATS starts the embedded server of a clustered replica: with the
// witness on the first start of a first replica, routed to the seeds and
// to the routes of earlier starts.
type clusterNATS struct {
	cfg     ClusterConfig
	dir     string // DATA
	state   clusterState
	witness *natslog.Embedded
	sys     *nats.Conn
	logger  *slog.Logger
	// evacuating marks "stream/server" moves asked for (the controller's
	// goroutine only).
	evacuating map[string]bool
	// leaderChecked is when the controller last looked at where the
	// ledger's stream leader is.
	leaderChecked time.Time
}

// leaderCheckEvery is how often the primary's controller checks that the
// ledger's stream leader is on its server.
const leaderCheckEvery = 5 * time.Second

// startClusterNATS starts the replica's server (and the witness) and
// waits until the cluster has a meta leader that counts this server.
func startClusterNATS(ctx context.Context, cfg ClusterConfig, dataDir, nodeID string, base natslog.EmbeddedConfig, pending bool, logger *slog.Logger) (*natslog.Embedded, *clusterNATS, error) {
	st, found, err := loadClusterState(dataDir)
	if err != nil {
		return nil, nil, err
	}
	if !found {
		if err := checkNoStandaloneStore(dataDir); err != nil {
			return nil, nil, err
		}
		st = clusterState{Name: cfg.Name, ServerName: ServerName(nodeID), Listen: cfg.Listen}
		if st.Name == "" {
			st.Name = DefaultClusterName
		}
	}
	if cfg.Name != "" && cfg.Name != st.Name {
		return nil, nil, fmt.Errorf("this replica is in NATS cluster %q, not %q", st.Name, cfg.Name)
	}
	if cfg.Listen != "" && !strings.HasSuffix(cfg.Listen, ":0") {
		st.Listen = cfg.Listen
	}
	st.CodeVersion = cfg.CodeVersion
	for _, r := range cfg.Routes {
		if !slices.Contains(st.Routes, r) {
			st.Routes = append(st.Routes, r)
		}
	}
	if !found {
		// Written before the store exists: a store without it is standalone.
		if err := st.save(dataDir); err != nil {
			return nil, nil, err
		}
	}
	c := &clusterNATS{cfg: cfg, dir: dataDir, state: st, logger: logger, evacuating: map[string]bool{}}
	witnessOn := cfg.Witness && !st.WitnessRemoved
	var witnessRoute string
	if witnessOn {
		if witnessRoute, err = freeRoute(); err != nil {
			return nil, nil, err
		}
	}
	base.ServerName = st.ServerName
	base.Tags = serverTags(cfg.CodeVersion, pending)
	base.MaxStore, base.MaxMemory = cfg.MaxStore, cfg.MaxMemory
	if base.MaxStore == 0 {
		base.MaxStore = natslog.DefaultClusterMaxStore
	}
	if base.MaxMemory == 0 {
		base.MaxMemory = natslog.DefaultClusterMaxMemory
	}
	base.System = true
	base.Pending = pending
	routes := slices.Clone(st.Routes)
	if witnessOn {
		routes = append(routes, witnessRoute)
	}
	if len(routes) == 0 {
		return nil, nil, errors.New("a clustered replica needs a route: --join a service, or --cluster for the first replica")
	}
	auth := withSavedPins(base.Cluster, &c.state)
	base.Cluster = &natslog.ClusterConfig{Name: st.Name, Listen: st.Listen, Routes: routes, Auth: auth}
	e, err := natslog.StartEmbedded(base)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*natslog.Embedded, *clusterNATS, error) {
		c.close()
		e.Shutdown()
		return nil, nil, err
	}
	c.state.Listen = strings.TrimPrefix(e.ClusterURL(), "nats-route://")
	if witnessOn {
		if st.Witness == "" {
			c.state.Witness = st.ServerName + "-witness"
		}
		c.witness, err = natslog.StartEmbedded(natslog.EmbeddedConfig{
			DataDir: filepath.Join(dataDir, "witness"), Listen: "127.0.0.1:0", ServerName: c.state.Witness,
			Tags: []string{natslog.TagWitness}, MaxStore: base.MaxStore, MaxMemory: base.MaxMemory, Logger: base.Logger,
			Cluster: &natslog.ClusterConfig{Name: st.Name, Listen: strings.TrimPrefix(witnessRoute, "nats-route://"), Routes: []string{e.ClusterURL()}, Auth: auth},
		})
		if err != nil {
			return fail(fmt.Errorf("witness: %w", err))
		}
	}
	if err := c.state.save(dataDir); err != nil {
		return fail(err)
	}
	if c.sys, err = e.ConnectSystem(); err != nil {
		return fail(err)
	}
	if err := waitMetaPeer(ctx, e); err != nil {
		return fail(err)
	}
	// One meta leader change right after the first bootstrap moves the meta
	// group past its first term: empty servers joining later cannot then
	// elect a group of their own (shared/notes, "simultaneous joins").
	if witnessOn && !c.state.Bootstrapped {
		if err := c.firstStepdown(ctx, e); err != nil {
			return fail(fmt.Errorf("first meta stepdown: %w", err))
		}
		c.state.Bootstrapped = true
		if err := c.state.save(dataDir); err != nil {
			return fail(err)
		}
	}
	_, metaLeader := e.MetaPeers()
	logger.Info("nats cluster", slog.String("cluster", e.ClusterURL()), slog.String("server", e.Name()), slog.String("meta_leader", metaLeader),
		slog.String("name", st.Name), slog.Bool("witness", c.witness != nil))
	return e, c, nil
}

// serverTags are a replica's server tags: Trusted or Pending, and its
// code version.
func serverTags(codeVersion string, pending bool) []string {
	t := natslog.TagTrusted
	if pending {
		t = natslog.TagPending
	}
	return []string{t, natslog.CodeVersionTag(codeVersion)}
}

// streamTags place the streams on Trusted replicas' servers.
var streamTags = []string{natslog.TagTrusted}

// firstStepdown moves the meta leader once. A just-elected leader may not
// answer yet: the request is repeated until the leader has changed.
func (c *clusterNATS) firstStepdown(ctx context.Context, e *natslog.Embedded) error {
	_, before := e.MetaPeers()
	ctx, cancel := context.WithTimeout(ctx, clusterReadyTimeout)
	defer cancel()
	for {
		reqCtx, cancelReq := context.WithTimeout(ctx, time.Second)
		err := natslog.StepdownMeta(reqCtx, c.sys, "")
		cancelReq()
		if err == nil {
			return waitMeta(ctx, e, func(leader string) bool { return leader != before })
		}
		if _, leader := e.MetaPeers(); leader != "" && leader != before {
			return waitMetaPeer(ctx, e)
		}
		if ctx.Err() != nil {
			return err
		}
		c.logger.Info("meta stepdown not answered; retrying", slog.Any("err", err))
	}
}

// freeRoute picks a free loopback port for the witness's route listener,
// which the replica's server must know before the witness starts.
func freeRoute() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return "nats-route://" + l.Addr().String(), nil
}

// waitMetaPeer waits until the cluster has a meta leader and it counts
// this server, and JetStream answers here.
func waitMetaPeer(ctx context.Context, e *natslog.Embedded) error {
	return waitMeta(ctx, e, func(string) bool { return true })
}

// waitMeta waits until JetStream answers here and the meta leader's name
// satisfies ok.
func waitMeta(ctx context.Context, e *natslog.Embedded, ok func(leader string) bool) error {
	ctx, cancel := context.WithTimeout(ctx, clusterReadyTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, leader := e.MetaPeers(); leader != "" && ok(leader) && e.Server().JetStreamIsCurrent() {
			return nil
		}
		select {
		case <-ctx.Done():
			peers, leader := e.MetaPeers()
			return engine.Wrap(engine.KindUnavailable, "NatsNotReady", ctx.Err(), "the JetStream cluster does not count server %s (current %v, meta leader %q, peers %v)",
				e.Name(), e.Server().JetStreamIsCurrent(), leader, peers)
		case <-tick.C:
		}
	}
}

// clusterReadyTimeout bounds the waits for the meta group (raft's
// election timeout is 4-9 s).
const clusterReadyTimeout = 60 * time.Second

// streamAttemptTimeout bounds one attempt to set the streams up.
const streamAttemptTimeout = 5 * time.Second

func (c *clusterNATS) close() {
	if c == nil {
		return
	}
	if c.sys != nil {
		c.sys.Close()
	}
	if c.witness != nil {
		c.witness.Shutdown()
		c.witness = nil
	}
}

// leaseStream is the stream of the primary's lease bucket (the follower
// role's KV bucket GAVEL_LEASE): it moves with the ledger, or it would die
// with the old servers.
const leaseStream = "KV_GAVEL_LEASE"

// streams are the streams the controller scales and moves.
func (c *clusterNATS) streams() []string {
	return slices.Concat([]string{natslog.LedgerStream, natslog.FeedsStream, leaseStream}, c.cfg.Streams)
}

// scaleStream raises an existing stream other than the ledger and feeds
// to replicas, placed on Trusted replicas' servers.
func scaleStream(ctx context.Context, js jetstream.JetStream, name string, replicas int) (bool, error) {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	cfg := s.CachedInfo().Config
	if cfg.Replicas >= replicas {
		return false, nil
	}
	cfg.Replicas, cfg.Placement = replicas, &jetstream.Placement{Tags: streamTags}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return false, fmt.Errorf("scale %s: %w", name, err)
	}
	return true, nil
}

// streamReplicas is stream's replica count now, 0 if it does not exist.
func streamReplicas(ctx context.Context, js jetstream.JetStream, name string) (int, error) {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().Config.Replicas, nil
}

// serviceNode is a service node of the ledger with its cluster data.
type serviceNode struct {
	rec  nodes.Record
	data *ClusterNodeData // nil: none (the first replica's genesis record)
}

// serviceNodes reads the service nodes from the node read model.
func (r *Replica) serviceNodes(_ context.Context) ([]serviceNode, error) {
	var all []nodes.Record
	if err := r.withNodes(func(_ projections.Nodes, st engine.StateReader) (err error) {
		all, err = nodes.ReadAll(st)
		return err
	}); err != nil {
		return nil, err
	}
	var out []serviceNode
	for _, rec := range all {
		if rec.Role != nodes.RoleService {
			continue
		}
		n := serviceNode{rec: rec}
		n.data, _ = clusterDataOf(rec.NodeData)
		out = append(out, n)
	}
	return out, nil
}

// runCluster is the replication controller of a clustered replica: on
// every tick it brings the cluster to what the ledger says. Each step is
// idempotent and retried on the next tick when it fails.
func (r *Replica) runCluster(ctx context.Context) {
	tick := time.NewTicker(clusterTick)
	defer tick.Stop()
	for {
		if err := r.reconcile(ctx); err != nil && ctx.Err() == nil {
			r.logger.Warn("cluster step failed; retried", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// clusterTick is how often the controller compares the cluster with the
// ledger.
const clusterTick = 200 * time.Millisecond

// reconcile: every Trusted replica's users are admitted; the witness goes
// once three replicas are peers; and, on the primary only, the streams go
// R3 once three service nodes are Trusted and their servers are peers,
// and a Retired replica's server gives up its stream replicas and is
// removed by peer id.
func (r *Replica) reconcile(ctx context.Context) error {
	c := r.cluster
	svc, err := r.serviceNodes(ctx)
	if err != nil {
		return err
	}
	peers, _ := r.embedded.MetaPeers()
	isPeer := func(name string) bool {
		return slices.ContainsFunc(peers, func(p natslog.Peer) bool { return p.Name == name })
	}
	own := ServerName(r.node.ID)

	keys := map[natslog.User][]string{}
	var routes []string
	trusted := 0
	for _, n := range svc {
		if n.rec.Status != nodes.StatusTrusted {
			continue
		}
		trusted++
		if n.data == nil || n.data.ServerName == own {
			continue
		}
		for u, k := range n.data.NATSUsers {
			keys[natslog.User(u)] = append(keys[natslog.User(u)], k)
		}
		if n.data.Route != "" {
			routes = append(routes, n.data.Route)
		}
	}
	// The routes a restart solicits: the Trusted replicas' (the witness's
	// and a joiner's seed are not needed once those are peers).
	if len(routes) > 0 && !slices.Equal(routes, c.state.Routes) {
		c.state.Routes = routes
		if err := c.state.save(c.dir); err != nil {
			return err
		}
	}
	if !maps.EqualFunc(keys, r.peerKeys, slices.Equal[[]string]) {
		if err := r.embedded.Reload(keys, false); err != nil {
			return err
		}
		r.peerKeys = keys
		r.logger.Info("nats users reloaded: every Trusted replica's users are admitted", slog.Int("replicas", trusted))
	}
	if err := r.reconcileRoutes(svc, isPeer); err != nil {
		return err
	}

	if err := r.retagRetired(svc, isPeer(own)); err != nil {
		return err
	}
	r.noticeRetired(svc, isPeer(own))

	replicaPeers := 0
	for _, n := range svc {
		if n.rec.Status == nodes.StatusTrusted && isPeer(ServerName(n.rec.NodeID)) {
			replicaPeers++
		}
	}
	if replicaPeers >= ReplicatedReplicas {
		// The witness runs beside the first replica, whatever its role.
		if err := c.removeWitness(ctx, r.embedded); err != nil {
			return err
		}
	}
	// What changes the streams and the meta group is done by one replica,
	// the primary, so that two controllers never race on the same move.
	if !r.IsPrimary() {
		return nil
	}
	// The ledger's stream leader drifts (a scale, a server's restart): the
	// primary brings it back to its own server now and then, saving every
	// append a hop.
	if time.Since(c.leaderChecked) >= leaderCheckEvery {
		c.leaderChecked = time.Now()
		r.moveStreamLeader(ctx)
	}
	if replicaPeers >= ReplicatedReplicas {
		js, err := jetstream.New(r.conn)
		if err != nil {
			return err
		}
		if n, err := streamReplicas(ctx, js, natslog.LedgerStream); err != nil {
			return err
		} else if n < ReplicatedReplicas {
			if err := natslog.EnsureStreamsPlaced(ctx, js, ReplicatedReplicas, streamTags); err != nil {
				return err
			}
			r.logger.Info("streams replicated", slog.Int("replicas", ReplicatedReplicas))
		}
		for _, name := range c.streams()[2:] {
			if scaled, err := scaleStream(ctx, js, name, ReplicatedReplicas); err != nil {
				return err
			} else if scaled {
				r.logger.Info("stream replicated", slog.String("stream", name), slog.Int("replicas", ReplicatedReplicas))
			}
		}
	}

	for _, n := range svc {
		name := ServerName(n.rec.NodeID)
		if n.rec.Status != nodes.StatusRetired || name == own || !isPeer(name) {
			continue
		}
		if err := r.retireServer(ctx, name, peers); err != nil {
			return err
		}
	}
	return nil
}

// retagRetired retags a retired replica's own server (while it is still
// a peer: a removed server's JetStream is off and must not be reloaded),
// so that no stream replica moving off another server lands on it.
func (r *Replica) retagRetired(svc []serviceNode, ownIsPeer bool) error {
	if !ownIsPeer || slices.Contains(r.embedded.Tags(), natslog.TagRetired) {
		return nil
	}
	for _, n := range svc {
		if n.rec.NodeID == r.node.ID && n.rec.Status == nodes.StatusRetired {
			if err := r.embedded.Retag([]string{natslog.TagRetired, natslog.CodeVersionTag(r.cluster.state.CodeVersion)}); err != nil {
				return err
			}
			r.logger.Info("retired: the server is retagged so that no stream replica is placed on it", slog.String("server", r.embedded.Name()))
		}
	}
	return nil
}

// noticeRetired closes Retired() once the ledger has retired this
// replica's node and its server has left the JetStream cluster: it has
// nothing left to serve.
func (r *Replica) noticeRetired(svc []serviceNode, ownIsPeer bool) {
	if ownIsPeer {
		return
	}
	for _, n := range svc {
		if n.rec.NodeID == r.node.ID && n.rec.Status == nodes.StatusRetired {
			r.retiredOnce.Do(func() {
				r.logger.Info("retired: this replica's node is retired and its server has left the cluster", slog.String("node_id", r.node.ID))
				close(r.retired)
			})
		}
	}
}

// Retired is closed once this replica's node is retired and its server
// has left the JetStream cluster (gavel serve then exits); never for a
// replica that is not clustered.
func (r *Replica) Retired() <-chan struct{} { return r.retired }

// removeWitness stops the witness and removes it from the meta group,
// once; the meta leader moves off it first.
func (c *clusterNATS) removeWitness(ctx context.Context, e *natslog.Embedded) error {
	if c.witness == nil {
		return nil
	}
	if _, leader := e.MetaPeers(); leader == c.state.Witness {
		if err := natslog.StepdownMeta(ctx, c.sys, e.Name()); err != nil {
			return err
		}
		return nil // the next tick goes on once the leader moved
	}
	// Stopped before it is removed: a running removed server disables its
	// JetStream, and it holds no stream (TagWitness).
	id := c.witness.PeerID()
	c.witness.Shutdown()
	c.witness = nil
	if err := natslog.RemoveServer(ctx, c.sys, id); err != nil {
		return err
	}
	c.state.WitnessRemoved, c.state.Witness = true, ""
	if err := c.state.save(c.dir); err != nil {
		return err
	}
	c.logger.Info("witness removed: three replicas are JetStream peers", slog.String("peer_id", id))
	return nil
}

// retireServer moves every stream replica off the server named name (the
// meta leader places each replacement on a Trusted replica's server, and
// it catches up before the old peer goes), waits until no stream lists
// the server and every stream has its replicas current, then removes the
// server from the JetStream cluster by peer id.
func (r *Replica) retireServer(ctx context.Context, name string, peers []natslog.Peer) error {
	settled := true
	for _, s := range r.cluster.streams() {
		set, err := natslog.StreamPeerSet(ctx, r.conn, s)
		if err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				continue
			}
			return err
		}
		holding := slices.ContainsFunc(set, func(p natslog.Peer) bool { return p.Name == name })
		if holding && !r.cluster.evacuating[s+"/"+name] {
			if err := natslog.EvacuateStreamPeer(ctx, r.conn, s, name); err != nil {
				return fmt.Errorf("move %s off %s: %w", s, name, err)
			}
			r.cluster.evacuating[s+"/"+name] = true
			r.logger.Info("moving a stream replica off a retired replica's server", slog.String("stream", s), slog.String("server", name))
		}
		current := !slices.ContainsFunc(set, func(p natslog.Peer) bool { return !p.Current })
		if holding || !current {
			settled = false
		}
	}
	if !settled {
		return nil // checked again on the next tick
	}
	// Removing the meta leader's server costs a meta election (4-9 s of
	// "JetStream temporarily unavailable" on every server): hand the meta
	// leadership to this server first.
	if _, leader := r.embedded.MetaPeers(); leader == name {
		if err := natslog.StepdownMeta(ctx, r.cluster.sys, r.embedded.Name()); err != nil {
			return fmt.Errorf("move the meta leader off %s: %w", name, err)
		}
		r.logger.Info("meta leader moved off a retired replica's server before its removal", slog.String("server", name))
		return nil // removed on a later tick, once the leader has moved
	}
	var id string
	for _, p := range peers {
		if p.Name == name {
			id = p.PeerID
		}
	}
	if id == "" {
		return fmt.Errorf("no peer id for server %s", name)
	}
	if err := natslog.RemoveServer(ctx, r.cluster.sys, id); err != nil {
		return err
	}
	r.logger.Info("retired replica's server removed from the JetStream cluster", slog.String("server", name), slog.String("peer_id", id))
	return nil
}

// serverRemoved says whether a Retired service node's server has left the
// JetStream cluster: only then is the node removable. Nodes that are not
// service nodes, and services that are not clustered, have no server.
func (r *Replica) serverRemoved(rec nodes.Record) bool {
	if r.cluster == nil || rec.Role != nodes.RoleService {
		return true
	}
	return !r.embedded.HasMetaPeer(ServerName(rec.NodeID))
}

// clusterGenesisWrites trust, in virtual mode, the first replica's code
// version (its host data) and the measurement every replica declares.
func clusterGenesisWrites(codeVersion string) engine.WriteSet {
	meta, _ := json.Marshal(map[string]string{"metadata": "gavel code version " + codeVersion})
	allowed, _ := json.Marshal("AllowedToJoin")
	return engine.WriteSet{
		{Table: nodes.TableVirtualHostData, Key: VirtualHostData(codeVersion), Value: meta},
		{Table: nodes.TableVirtualMeasurements, Key: ReplicaMeasurement, Value: allowed},
	}
}

// ClusterURL is the replica's route URL (nats-route://host:port), or ""
// standalone.
func (r *Replica) ClusterURL() string {
	if r.cluster == nil {
		return ""
	}
	return r.embedded.ClusterURL()
}

// ensureStreams creates the streams R1 or keeps the replicas they have
// (the controller raises them; a restart never shrinks them). Right after
// a cluster restart the streams' groups may not answer yet: it retries
// until clusterReadyTimeout.
func (c *clusterNATS) ensureStreams(ctx context.Context, js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(ctx, clusterReadyTimeout)
	defer cancel()
	for {
		// Each attempt has its own bound: a request the cluster drops while
		// it settles is asked again rather than waited on.
		attempt, cancelAttempt := context.WithTimeout(ctx, streamAttemptTimeout)
		n, err := streamReplicas(attempt, js, natslog.LedgerStream)
		if err == nil {
			err = natslog.EnsureStreamsPlaced(attempt, js, max(n, 1), streamTags)
		}
		cancelAttempt()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("the streams did not answer within %s: %w", clusterReadyTimeout, err)
		}
		c.logger.Warn("streams not ready; retrying", slog.Any("err", err))
		select {
		case <-ctx.Done():
			return fmt.Errorf("the streams did not answer within %s: %w", clusterReadyTimeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// clusterInfo is GET /node/network's cluster section, nil standalone:
// this replica's route and users, and every Trusted replica's from the
// ledger.
func (r *Replica) clusterInfo(ctx context.Context) *handlers.ClusterInfo {
	if r.cluster == nil {
		return nil
	}
	info := &handlers.ClusterInfo{Name: r.cluster.state.Name, Routes: []string{r.embedded.ClusterURL()}, NATSUsers: map[string][]string{}}
	for u, k := range r.embedded.Seeds().Keys {
		info.NATSUsers[string(u)] = append(info.NATSUsers[string(u)], k)
	}
	svc, err := r.serviceNodes(ctx)
	if err != nil {
		return info // the routes of this replica are enough to join
	}
	for _, n := range svc {
		if n.rec.Status != nodes.StatusTrusted || n.data == nil || n.data.ServerName == ServerName(r.node.ID) {
			continue
		}
		if n.data.Route != "" && !slices.Contains(info.Routes, n.data.Route) {
			info.Routes = append(info.Routes, n.data.Route)
		}
		for u, k := range n.data.NATSUsers {
			info.NATSUsers[u] = append(info.NATSUsers[u], k)
		}
	}
	return info
}

// HasClusterPeer says whether the meta group lists the server named name.
func (r *Replica) HasClusterPeer(name string) bool { return r.embedded.HasMetaPeer(name) }

// ClusterPeers are the JetStream meta group's servers as this replica's
// server knows them, and the meta leader's name.
func (r *Replica) ClusterPeers() ([]natslog.Peer, string) { return r.embedded.MetaPeers() }

package natslog

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/gavelhq/gavel/engine"
)

// TagWitness keeps every stream off a server: the meta-only witness that
// lets a lone clustered replica elect a JetStream meta leader.
const TagWitness = "!jetstream"

// Server tags of a clustered replica: the streams are placed on Trusted
// replicas' servers only, so a Pending joiner's server (a meta peer) never
// holds a replica; a joiner's server is retagged once it is Trusted.
const (
	TagTrusted = "gavel-trusted"
	TagPending = "gavel-pending"
	// TagRetired marks a retired replica's server while its stream
	// replicas move off it: no replacement is placed on it.
	TagRetired = "gavel-retired"
)

// CodeVersionTag is the placement tag of a replica's server running code
// version v: placement by tag is deterministic where "any other server"
// is not.
func CodeVersionTag(v string) string { return "gavel-code:" + strings.ToLower(v) }

// Storage limits of a clustered replica's server, equal on every server
// (EmbeddedConfig.MaxStore): named settings.
const (
	DefaultClusterMaxStore  int64 = 64 << 30
	DefaultClusterMaxMemory int64 = 256 << 20
)

// UserSystem is the embedded server's own management user, in the system
// account (EmbeddedConfig.System).
const UserSystem User = "system"

// Errors of the cluster management API.
var (
	// ErrPeerStillHoldsReplicas: a server still lists a replica of a gavel
	// stream, so it must not be stopped or removed yet.
	ErrPeerStillHoldsReplicas = errors.New("the server still holds a replica of a gavel stream")
	// ErrNoSystemUser: the server was started without EmbeddedConfig.System.
	ErrNoSystemUser = errors.New("the embedded server has no system user")
)

// serverUsers is the user list of cfg: the seeds' users (the sequencer's
// and the feed publisher's without write rights while Pending), the extra
// client keys, and the other replicas' users.
func serverUsers(cfg EmbeddedConfig, seeds Seeds) ([]*server.NkeyUser, error) {
	users, err := nkeyUsers(seeds, cfg.ClientKeys)
	if err != nil {
		return nil, err
	}
	if cfg.Pending {
		// Every service user of a Pending replica: the sequencer's and
		// the feed publisher's write rights, and the replica user's lease
		// and forwarding, wait for the members' trust.
		for i, u := range slices.Concat(serviceUsers, ClientKinds) {
			if slices.Contains(serviceUsers, u) {
				p := users[i].Permissions
				p.Publish.Deny = append(slices.Clone(p.Publish.Deny), pendingDeny...)
			}
		}
	}
	for _, u := range slices.Concat(serviceUsers, ClientKinds) {
		for _, k := range cfg.PeerKeys[u] {
			if !nkeys.IsValidPublicUserKey(k) {
				return nil, engine.Errorf(engine.KindInvalid, "InvalidCredentials", "%q is not a public user nkey", k)
			}
			if slices.ContainsFunc(users, func(n *server.NkeyUser) bool { return n.Nkey == k }) {
				continue // a replica's own user, or listed twice
			}
			users = append(users, &server.NkeyUser{Nkey: k, Permissions: permissions(u)})
		}
	}
	for u := range cfg.PeerKeys {
		if !slices.Contains(serviceUsers, u) && !u.IsClient() {
			return nil, engine.Errorf(engine.KindInvalid, "InvalidCredentials", "peer keys for %q, which is no user kind", u)
		}
	}
	return users, nil
}

// pendingDeny is what a Pending replica's own users may not publish: no
// entry, no feed, no stream change, no lease (it must never lead) and no
// forwarded write (it serves nothing).
var pendingDeny = []string{LedgerSubjects, FeedSubjects,
	"$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>",
	"$JS.API.STREAM.PEER.>", "$JS.API.STREAM.LEADER.>", "$KV.>", ReplicaSubjects}

// addSystemUser admits DataDir/system.nk's user into the system account.
func addSystemUser(opts *server.Options, dataDir string) error {
	pub, err := loadOrCreateUserSeed(filepath.Join(dataDir, UserSystem.SeedFile()))
	if err != nil {
		return err
	}
	// With an explicit system account beside the global one only,
	// nats-server admits anonymous clients into the global account unless
	// an authorization block was defined (server.go, sysAccOnlyNoAuthUser):
	// define one, with the default timeout.
	if err := opts.ProcessConfigString("authorization { timeout: 2 }"); err != nil {
		return engine.Wrap(engine.KindInternal, "InvalidNatsConfig", err, "authorization block")
	}
	sys := server.NewAccount(server.DEFAULT_SYSTEM_ACCOUNT)
	opts.Accounts = append(opts.Accounts, sys)
	opts.SystemAccount = server.DEFAULT_SYSTEM_ACCOUNT
	opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: pub, Account: sys})
	return nil
}

// systemKey is the system user's public key in opts, or "".
func systemKey(opts *server.Options) string {
	for _, u := range opts.Nkeys {
		if u.Account != nil && u.Account.Name == server.DEFAULT_SYSTEM_ACCOUNT {
			return u.Nkey
		}
	}
	return ""
}

// Reload replaces the users the running server admits: other replicas'
// keys (PeerKeys) and whether this replica is still Pending. Connections
// of users no longer admitted are closed by the server.
func (e *Embedded) Reload(peerKeys map[User][]string, pending bool) error {
	e.reload.Lock()
	defer e.reload.Unlock()
	cfg := e.cfg
	cfg.PeerKeys, cfg.Pending = peerKeys, pending
	users, err := serverUsers(cfg, e.seeds)
	if err != nil {
		return err
	}
	if err := e.reloadable(); err != nil {
		return err
	}
	next := *e.opts
	for _, u := range e.opts.Nkeys {
		if u.Nkey == e.sys {
			users = append(users, u)
		}
	}
	next.Nkeys = users
	if err := e.srv.ReloadOptions(&next); err != nil {
		return engine.Wrap(engine.KindInternal, "NatsReloadFailed", err, "cannot reload the embedded server's users")
	}
	e.cfg, e.opts = cfg, &next
	return nil
}

// Retag replaces the server's placement tags (nats-server reloads them
// live).
func (e *Embedded) Retag(tags []string) error {
	e.reload.Lock()
	defer e.reload.Unlock()
	if err := e.reloadable(); err != nil {
		return err
	}
	next := *e.opts
	next.Tags = tags
	if err := e.srv.ReloadOptions(&next); err != nil {
		return engine.Wrap(engine.KindInternal, "NatsReloadFailed", err, "cannot retag the embedded server")
	}
	e.cfg.Tags, e.opts = tags, &next
	return nil
}

// Tags are the server's placement tags now.
func (e *Embedded) Tags() []string { return slices.Clone(e.cfg.Tags) }

// Pending says whether the server runs with a Pending replica's rights.
func (e *Embedded) Pending() bool {
	e.reload.Lock()
	defer e.reload.Unlock()
	return e.cfg.Pending
}

// ConnectSystem opens an in-process connection as the system user.
func (e *Embedded) ConnectSystem(opts ...nats.Option) (*nats.Conn, error) {
	if e.sys == "" {
		return nil, ErrNoSystemUser
	}
	auth, err := nats.NkeyOptionFromSeed(filepath.Join(e.cfg.DataDir, UserSystem.SeedFile()))
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, "InvalidCredentials", err, "system user")
	}
	nc, err := nats.Connect(e.ClientURL(), append([]nats.Option{nats.InProcessServer(e.srv), auth, nats.Name("gavel-system")}, opts...)...)
	if err != nil {
		return nil, unavailable(err, "cannot connect to the embedded NATS server as the system user")
	}
	return nc, nil
}

// Name is the server's name; PeerID its JetStream peer id (what a
// server removal names: names are not persisted by the meta group).
func (e *Embedded) Name() string   { return e.srv.Name() }
func (e *Embedded) PeerID() string { return e.srv.Node() }

// Peer is one server of the JetStream meta group.
type Peer struct {
	Name    string `json:"name"`
	PeerID  string `json:"peer"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline,omitempty"`
}

// MetaPeers are the servers of the meta group as this server knows them
// (itself first), and the meta leader's name ("" while there is none).
func (e *Embedded) MetaPeers() ([]Peer, string) {
	jsz, err := e.srv.Jsz(&server.JSzOptions{})
	if err != nil || jsz.Meta == nil || jsz.Meta.Leader == "" {
		return nil, ""
	}
	// The replicas are the other peers, the leader among them.
	out := []Peer{{Name: e.Name(), PeerID: e.PeerID(), Current: true}}
	for _, r := range jsz.Meta.Replicas {
		if r.Name != e.Name() {
			out = append(out, Peer{Name: r.Name, PeerID: r.Peer, Current: r.Current, Offline: r.Offline})
		}
	}
	return out, jsz.Meta.Leader
}

// HasMetaPeer says whether the meta group lists the server named name.
func (e *Embedded) HasMetaPeer(name string) bool {
	peers, _ := e.MetaPeers()
	return slices.ContainsFunc(peers, func(p Peer) bool { return p.Name == name })
}

// apiRequest sends a JetStream API request and decodes its answer,
// turning an API error into a typed one.
func apiRequest(ctx context.Context, nc *nats.Conn, subject string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	msg, err := nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		return unavailable(err, "%s", subject)
	}
	var api struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &api); err != nil {
		return engine.Wrap(engine.KindInternal, "BadNatsAnswer", err, "%s", subject)
	}
	if api.Error != nil {
		if api.Error.ErrCode == int(jetstream.JSErrCodeStreamNotFound) {
			return engine.Wrap(engine.KindNotFound, "StreamNotFound", jetstream.ErrStreamNotFound, "%s", subject)
		}
		return engine.Errorf(engine.KindUnavailable, "NatsClusterRefused", "%s: %s (%d/%d)", subject, api.Error.Description, api.Error.Code, api.Error.ErrCode)
	}
	if resp != nil {
		return json.Unmarshal(msg.Data, resp)
	}
	return nil
}

// RemoveServer removes a server from the JetStream cluster by its peer id
// (system user). Only a stopped server should be removed, and only once
// no stream lists it: the server would disable its own JetStream, and
// its replicas would be lost. A removed name can never rejoin.
func RemoveServer(ctx context.Context, sys *nats.Conn, peerID string) error {
	return apiRequest(ctx, sys, "$JS.API.SERVER.REMOVE", server.JSApiMetaServerRemoveRequest{Peer: peerID}, nil)
}

// StepdownMeta moves the meta leader away from this one, to the server
// named preferred if it is not "" (system user).
func StepdownMeta(ctx context.Context, sys *nats.Conn, preferred string) error {
	req := server.JSApiLeaderStepdownRequest{}
	if preferred != "" {
		req.Placement = &server.Placement{Preferred: preferred}
	}
	return apiRequest(ctx, sys, "$JS.API.META.LEADER.STEPDOWN", req, nil)
}

// StreamPeers are the servers holding a replica of stream: the leader
// first.
func StreamPeers(ctx context.Context, nc *nats.Conn, stream string) ([]string, error) {
	set, err := StreamPeerSet(ctx, nc, stream)
	var out []string
	for _, p := range set {
		out = append(out, p.Name)
	}
	return out, err
}

// StreamPeerSet are stream's replicas, the leader first, each saying
// whether it is current; nil for a stream outside a cluster.
func StreamPeerSet(ctx context.Context, nc *nats.Conn, stream string) ([]Peer, error) {
	var info struct {
		Cluster *server.ClusterInfo `json:"cluster"`
	}
	if err := apiRequest(ctx, nc, "$JS.API.STREAM.INFO."+stream, struct{}{}, &info); err != nil {
		return nil, err
	}
	if info.Cluster == nil {
		return nil, nil
	}
	var out []Peer
	if info.Cluster.Leader != "" {
		out = append(out, Peer{Name: info.Cluster.Leader, Current: true})
	}
	for _, r := range info.Cluster.Replicas {
		out = append(out, Peer{Name: r.Name, PeerID: r.Peer, Current: r.Current && !r.Offline, Offline: r.Offline})
	}
	return out, nil
}

// EvacuateStreamPeer moves stream's replica off the server named peer:
// the replacement (placed by the meta leader) catches up first, then the
// old peer is dropped; refused rather than under-replicated.
func EvacuateStreamPeer(ctx context.Context, nc *nats.Conn, stream, peer string) error {
	return apiRequest(ctx, nc, "$JS.API.STREAM.PEER.EVACUATE."+stream, server.JSApiStreamEvacuatePeerRequest{Peer: peer}, nil)
}

// StepdownStream moves stream's leader, to preferred if it is not "".
func StepdownStream(ctx context.Context, nc *nats.Conn, stream, preferred string) error {
	req := server.JSApiLeaderStepdownRequest{}
	if preferred != "" {
		req.Placement = &server.Placement{Preferred: preferred}
	}
	return apiRequest(ctx, nc, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, req, nil)
}

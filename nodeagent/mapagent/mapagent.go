// Package mapagent is the network-map node agent that gavel node run
// embeds, with Corda's node behaviour: it publishes its NodeInfo on start,
// when nodeinfo.json changes and every heartbeat; follows the signed map
// (polling GET /network-map honouring max-age, woken early by the
// gavel.feed.map feed when NATS is given, and publishing again when its own
// gavel.feed.nodes.<id> says it left the map); caches the map's NodeInfos in
// its folder and drops those that left (never its own); reads
// additional-node-infos; keeps network-parameters and
// network-parameters-update; records every advertised update in
// updates.jsonl; auto-accepts what engine/netmap/agent says it may; and at
// the flag day hot-loads, exits for a restart, or exits with the reason.
// The decisions are engine/netmap/agent's; this package does the I/O.
package mapagent

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/engine/netmap/agent"
	"github.com/gavelhq/gavel/nodeagent"
)

// Files and folders in the agent's base folder.
const (
	KeyFile         = "node_privk.pem"
	ConfigFile      = "nodeinfo.json"
	ServiceCertFile = "service_cert.pem"
	MapCertFile     = "network_map_cert.pem"
	UpdatesFile     = "updates.jsonl"
	StateFile       = "agent.json"
	CacheDir        = "node-infos"
	// PendingFile holds the advertised update's signed parameters until the
	// node accepts it; as in Corda, network-parameters-update is written
	// only on acceptance, so a restart never promotes an unaccepted update.
	PendingFile   = "network-parameters-pending"
	AdditionalDir = "additional-node-infos"
)

// NodeConfig is nodeinfo.json: what the node publishes.
type NodeConfig struct {
	LegalName       string   `json:"legal_name"`
	Addresses       []string `json:"addresses"`
	PlatformVersion int      `json:"platform_version"`
	Serial          int64    `json:"serial"`
}

// Config configures an agent.
type Config struct {
	Base      string
	URL       string
	NATSURL   string // optional: follow gavel.feed.map
	NATSOpts  []nats.Option
	Heartbeat time.Duration // 0: 24 h
	// MaxPoll caps the wait between map polls (0: the map's max-age).
	MaxPoll time.Duration
	Policy  agent.Policy
	Logger  *slog.Logger
}

// Exit is why Run returned: the process exit code and the message.
type Exit struct {
	Code    int
	Message string
}

func (e Exit) Error() string { return e.Message }

// Refusals at start, as typed errors (the message is printed, exit 1).
var ErrBadFolder = errors.New("the node folder is not usable")

// Agent is one running node agent.
type Agent struct {
	cfg     Config
	c       *client.Client
	key     ed25519.PrivateKey
	service *x509.Certificate
	lim     netmap.Limits
	node    NodeConfig
	ownHash string

	mapKey  any
	current netmap.NetworkParameters
	curHash string
	etag    string
	pending *agent.Update
	lastPub time.Time
	cfgMod  time.Time
	// left is the NodeInfo hash the node's own feed last said left the
	// map ("" if none since the loop looked); set by the feed's goroutine.
	left atomic.Value
}

// Load reads the base folder.
func Load(cfg Config) (*Agent, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 24 * time.Hour
	}
	a := &Agent{cfg: cfg, c: client.New(cfg.URL), lim: netmap.DefaultLimits()}
	kb, err := os.ReadFile(filepath.Join(cfg.Base, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadFolder, err)
	}
	if a.key, err = nodeagent.ParseKey(kb); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadFolder, err)
	}
	cb, err := os.ReadFile(filepath.Join(cfg.Base, ServiceCertFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadFolder, err)
	}
	blk, _ := pem.Decode(cb)
	if blk == nil {
		return nil, fmt.Errorf("%w: %s is not PEM", ErrBadFolder, ServiceCertFile)
	}
	if a.service, err = x509.ParseCertificate(blk.Bytes); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadFolder, ServiceCertFile, err)
	}
	if err := a.readConfig(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Agent) path(name string) string { return filepath.Join(a.cfg.Base, name) }

func (a *Agent) readConfig() error {
	st, err := os.Stat(a.path(ConfigFile))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadFolder, err)
	}
	b, err := os.ReadFile(a.path(ConfigFile))
	if err != nil {
		return err
	}
	var n NodeConfig
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadFolder, ConfigFile, err)
	}
	a.node, a.cfgMod = n, st.ModTime()
	return nil
}

func readOptional(p string) ([]byte, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Start applies the start-up rules: the parameters file against the map
// (downloading it when absent, promoting the update after a flag day),
// the platform version, the map key. A refusal is an Exit with code 1.
func (a *Agent) Start(ctx context.Context) error {
	if err := os.WriteFile(a.path(StateFile), mustJSON(map[string]string{"url": a.cfg.URL}), 0o644); err != nil {
		return err
	}
	advertised := ""
	if m, err := a.fetchMap(ctx); err == nil && m != nil {
		advertised = m.NetworkParametersHash
	} else if err != nil {
		a.cfg.Logger.Warn("network map unreachable at start", slog.Any("err", err))
	}
	if a.mapKey == nil {
		// Corda starts on its file when the map is away: the map key then
		// comes from the certificate bootstrap left, checked against the
		// service's.
		if err := a.mapKeyFromFile(); err != nil {
			return Exit{1, "the network map cannot be reached and verified: " + err.Error()}
		}
	}
	for {
		params, err := readOptional(a.path(agent.ParametersFile))
		if err != nil {
			return err
		}
		update, err := readOptional(a.path(agent.ParametersUpdateFile))
		if err != nil {
			return err
		}
		d, err := agent.DecideStart(agent.Startup{PlatformVersion: a.node.PlatformVersion, MapKey: a.mapKey,
			Parameters: params, Update: update, Advertised: advertised, Limits: a.lim})
		if err != nil {
			return Exit{1, engine.AsError(err).Message}
		}
		if d.Download {
			b, err := a.c.SignedParameters(ctx, d.Hash)
			if err == nil {
				_, err = agent.CheckDownloaded(b, d.Hash, a.mapKey, a.lim)
			}
			if err != nil {
				return Exit{1, "network parameters " + d.Hash + ": " + engine.AsError(err).Message}
			}
			if err := writeAtomic(a.path(agent.ParametersFile), b); err != nil {
				return err
			}
			continue
		}
		if d.Promote {
			if err := os.Rename(a.path(agent.ParametersUpdateFile), a.path(agent.ParametersFile)); err != nil {
				return err
			}
		}
		a.current, a.curHash = d.Parameters, d.Hash
		return nil
	}
}

func (a *Agent) mapKeyFromFile() error {
	b, err := os.ReadFile(a.path(MapCertFile))
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return fmt.Errorf("%s is not PEM", MapCertFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return err
	}
	if err := cert.CheckSignatureFrom(a.service); err != nil {
		return fmt.Errorf("%s is not issued by the service: %w", MapCertFile, err)
	}
	a.mapKey = cert.PublicKey
	return nil
}

// Run starts the agent and follows the map until the flag day decides an
// exit or ctx ends (Exit{0, ""}).
func (a *Agent) Run(ctx context.Context) Exit {
	if err := a.Start(ctx); err != nil {
		var e Exit
		if errors.As(err, &e) {
			return e
		}
		return Exit{1, err.Error()}
	}
	wake := make(chan struct{}, 1)
	if a.cfg.NATSURL != "" {
		if stop, err := a.followFeed(wake); err != nil {
			a.cfg.Logger.Warn("feeds unreachable; polling the map", slog.Any("err", err))
		} else {
			defer stop()
		}
	}
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return Exit{0, ""}
		case <-wake:
		case <-time.After(wait):
		}
		maxAge, exit := a.step(ctx)
		if exit != nil {
			return *exit
		}
		wait = maxAge
		if wait <= 0 || (a.cfg.MaxPoll > 0 && wait > a.cfg.MaxPoll) {
			wait = a.cfg.MaxPoll
		}
		if wait <= 0 {
			wait = time.Minute
		}
	}
}

// step is one round: publish if due, the folder, the map.
func (a *Agent) step(ctx context.Context) (time.Duration, *Exit) {
	if st, err := os.Stat(a.path(ConfigFile)); err == nil && !st.ModTime().Equal(a.cfgMod) {
		if err := a.readConfig(); err != nil {
			a.cfg.Logger.Error("nodeinfo.json", slog.Any("err", err))
		} else {
			a.lastPub = time.Time{} // on change
		}
	}
	if time.Since(a.lastPub) >= a.cfg.Heartbeat {
		if err := a.publish(ctx); err != nil {
			a.cfg.Logger.Error("publish", slog.Any("err", err))
		}
	}
	a.scanFolder()
	maxAge, exit := a.followMap(ctx)
	if exit != nil {
		return maxAge, exit
	}
	// After the map, so that a node that left at a flag day it did not
	// accept exits instead of returning under parameters it does not run.
	if h, _ := a.left.Swap("").(string); h != "" && h == a.ownHash {
		a.cfg.Logger.Info("the node's feed says it left the map; publishing again", slog.String("hash", h))
		if err := a.publish(ctx); err != nil {
			a.cfg.Logger.Error("publish", slog.Any("err", err))
		}
	}
	return maxAge, nil
}

// followMap fetches the map (If-None-Match) and acts on a changed one.
func (a *Agent) followMap(ctx context.Context) (time.Duration, *Exit) {
	ans, err := a.c.NetworkMap(ctx, a.etag)
	if err != nil {
		a.cfg.Logger.Warn("network map", slog.Any("err", err))
		return 0, nil
	}
	if ans.NotModified {
		return ans.MaxAge, nil
	}
	v, err := netmap.VerifyMap(ans.Signed, a.service)
	if err != nil {
		a.cfg.Logger.Error("network map does not verify", slog.Any("err", err))
		return ans.MaxAge, nil
	}
	a.mapKey, a.etag = v.MapKey, ans.ETag
	return ans.MaxAge, a.onMap(ctx, v.Payload)
}

func (a *Agent) publish(ctx context.Context) error {
	signed, err := netmap.SignNodeInfo(a.key, netmap.NodeInfo{Addresses: a.node.Addresses, LegalIdentities: []string{a.node.LegalName},
		PlatformVersion: a.node.PlatformVersion, Serial: a.node.Serial})
	if err != nil {
		return err
	}
	res, err := a.c.PublishNodeInfo(ctx, signed)
	if err != nil {
		return err
	}
	a.ownHash, a.lastPub = res.NodeInfoHash, time.Now()
	return writeAtomic(filepath.Join(a.path(CacheDir), agent.NodeInfoFilePrefix+res.NodeInfoHash), signed)
}

func (a *Agent) fetchMap(ctx context.Context) (*netmap.MapPayload, error) {
	ans, err := a.c.NetworkMap(ctx, "")
	if err != nil {
		return nil, err
	}
	v, err := netmap.VerifyMap(ans.Signed, a.service)
	if err != nil {
		return nil, err
	}
	a.mapKey = v.MapKey
	return &v.Payload, nil
}

// scanFolder copies the winning NodeInfos of additional-node-infos into
// the cache and reports corrupt files.
func (a *Agent) scanFolder() {
	entries, err := os.ReadDir(a.path(AdditionalDir))
	if err != nil {
		return // a folder created later is picked up on a later round
	}
	var files []agent.File
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(a.path(AdditionalDir), e.Name()))
		if err == nil {
			files = append(files, agent.File{Name: e.Name(), Data: b})
		}
	}
	s := agent.ScanFolder(files, a.lim)
	for _, r := range s.Corrupt {
		a.cfg.Logger.Warn("corrupt NodeInfo file skipped", slog.String("file", r.File), slog.Any("err", r.Err))
	}
	for _, v := range s.Infos {
		p := filepath.Join(a.path(CacheDir), agent.FileName(v))
		if _, err := os.Stat(p); err != nil {
			writeAtomic(p, v.Raw)
		}
	}
}

// onMap reconciles the cache, handles an advertised update and the flag day.
func (a *Agent) onMap(ctx context.Context, m netmap.MapPayload) *Exit {
	a.reconcile(ctx, m.NodeInfoHashes)
	if m.NetworkParametersHash != a.curHash {
		return a.flagDay(m.NetworkParametersHash)
	}
	if up := m.ParametersUpdate; up != nil && (a.pending == nil || a.pending.Hash != up.NewParametersHash) {
		if err := a.advertised(ctx, *up); err != nil {
			a.cfg.Logger.Error("parameters update", slog.Any("err", err))
		}
	}
	if m.ParametersUpdate == nil && a.pending != nil {
		a.pending = nil // cancelled
		os.Remove(a.path(PendingFile))
		os.Remove(a.path(agent.ParametersUpdateFile))
	}
	return nil
}

func (a *Agent) reconcile(ctx context.Context, inMap []string) {
	os.MkdirAll(a.path(CacheDir), 0o755)
	entries, _ := os.ReadDir(a.path(CacheDir))
	var cached []string
	for _, e := range entries {
		if h, ok := strings.CutPrefix(e.Name(), agent.NodeInfoFilePrefix); ok {
			cached = append(cached, h)
		}
	}
	keep := []string{a.ownHash}
	fetch, drop := agent.Reconcile(cached, inMap, keep)
	for _, h := range fetch {
		b, err := a.c.NodeInfo(ctx, h)
		if err != nil {
			a.cfg.Logger.Warn("NodeInfo", slog.String("hash", h), slog.Any("err", err))
			continue
		}
		if p, err := netmap.ParseNodeInfo(b, a.lim); err != nil || p.Hash != h {
			a.cfg.Logger.Warn("NodeInfo does not match its hash", slog.String("hash", h))
			continue
		}
		writeAtomic(filepath.Join(a.path(CacheDir), agent.NodeInfoFilePrefix+h), b)
	}
	for _, h := range drop {
		os.Remove(filepath.Join(a.path(CacheDir), agent.NodeInfoFilePrefix+h))
	}
}

// CachedNodeInfos lists the hashes the cache holds.
func CachedNodeInfos(base string) []string {
	entries, _ := os.ReadDir(filepath.Join(base, CacheDir))
	var out []string
	for _, e := range entries {
		if h, ok := strings.CutPrefix(e.Name(), agent.NodeInfoFilePrefix); ok {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return out
}

func (a *Agent) advertised(ctx context.Context, up netmap.UpdatePayload) error {
	signed, err := a.c.SignedParameters(ctx, up.NewParametersHash)
	if err != nil {
		return err
	}
	u, err := agent.Advertised(a.current, up, signed, a.mapKey, a.lim, a.cfg.Policy)
	if err != nil {
		return err
	}
	if err := writeAtomic(a.path(PendingFile), signed); err != nil {
		return err
	}
	if u.AutoAccepted {
		if err := Ack(ctx, a.c, a.key, u.Hash); err != nil {
			return err
		}
		if err := writeAtomic(a.path(agent.ParametersUpdateFile), signed); err != nil {
			return err
		}
	}
	a.pending = &u
	return AppendUpdate(a.cfg.Base, u)
}

// flagDay decides at the flag day: hot-load, restart, or refuse.
func (a *Agent) flagDay(hash string) *Exit {
	if a.pending == nil || a.pending.Hash != hash {
		return &Exit{1, fmt.Sprintf("the network map advertises parameters %s, the node has %s and knew of no update: %s",
			hash, a.curHash, agent.MsgNotAccepted)}
	}
	accepted := Accepted(a.cfg.Base, hash)
	os.Remove(a.path(PendingFile))
	out := agent.FlagDay(a.current, a.pending.Parameters, accepted)
	switch out.Action {
	case agent.HotLoad:
		if err := os.Rename(a.path(agent.ParametersUpdateFile), a.path(agent.ParametersFile)); err != nil {
			return &Exit{1, err.Error()}
		}
		a.current, a.curHash, a.pending = a.pending.Parameters, hash, nil
		a.cfg.Logger.Info(out.Message, slog.String("hash", hash))
		return nil
	default:
		return &Exit{out.ExitCode, out.Message}
	}
}

// Ack signs and sends the node's acceptance of hash.
func Ack(ctx context.Context, c *client.Client, key ed25519.PrivateKey, hash string) error {
	b, err := netmap.SignAck(key, hash)
	if err != nil {
		return err
	}
	_, err = c.AckParameters(ctx, b)
	return err
}

// AppendUpdate records an update as one JSON line of updates.jsonl.
func AppendUpdate(base string, u agent.Update) error {
	f, err := os.OpenFile(filepath.Join(base, UpdatesFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(append(mustJSON(u), '\n'))
	return err
}

// Updates reads updates.jsonl: each update as last recorded, in the order
// first seen.
func Updates(base string) ([]agent.Update, error) {
	b, err := readOptional(filepath.Join(base, UpdatesFile))
	if err != nil {
		return nil, err
	}
	var out []agent.Update
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var u agent.Update
		if err := json.Unmarshal([]byte(line), &u); err != nil {
			return nil, fmt.Errorf("%s: %w", UpdatesFile, err)
		}
		if i := slices.IndexFunc(out, func(o agent.Update) bool { return o.Hash == u.Hash }); i >= 0 {
			out[i] = u
		} else {
			out = append(out, u)
		}
	}
	return out, nil
}

// Accepted reports whether the node accepted hash.
func Accepted(base, hash string) bool {
	us, _ := Updates(base)
	for _, u := range us {
		if u.Hash == hash {
			return u.Accepted
		}
	}
	return false
}

// AcceptLocal is gavel node accept: the hash must be the pending update
// the agent recorded (else OutdatedNetworkParameterHash, locally); then the
// node's acceptance is sent to the service the agent follows.
func AcceptLocal(ctx context.Context, base, hash string) error {
	us, err := Updates(base)
	if err != nil {
		return err
	}
	pending := ""
	var u agent.Update
	if len(us) > 0 {
		u = us[len(us)-1]
		pending = u.Hash
	}
	signed, err := os.ReadFile(filepath.Join(base, PendingFile))
	if err != nil {
		pending = ""
	}
	if err := agent.Accept(hash, pending); err != nil {
		return err
	}
	var st struct {
		URL string `json:"url"`
	}
	b, err := os.ReadFile(filepath.Join(base, StateFile))
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		return fmt.Errorf("%s: %w (run gavel node run first)", StateFile, err)
	}
	kb, err := os.ReadFile(filepath.Join(base, KeyFile))
	if err != nil {
		return err
	}
	key, err := nodeagent.ParseKey(kb)
	if err != nil {
		return err
	}
	if err := Ack(ctx, client.New(st.URL), key, hash); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(base, agent.ParametersUpdateFile), signed); err != nil {
		return err
	}
	u.Accepted = true
	return AppendUpdate(base, u)
}

// nodeFeedSubject is the node's own feed (replica.SubjectFeedNodes).
const nodeFeedSubject = "gavel.feed.nodes."

// followFeed wakes the loop on each gavel.feed.map message, and on a
// message of the node's own gavel.feed.nodes.<id> saying it left the map
// with the NodeInfo it last published (it passed the event horizon, say):
// then the loop publishes again at once instead of at the next heartbeat.
// It reads the feeds stream through an ephemeral ordered consumer, the
// only way a node's NATS user may read it, from the last message of each.
func (a *Agent) followFeed(wake chan<- struct{}) (func(), error) {
	nc, err := nats.Connect(a.cfg.NATSURL, a.cfg.NATSOpts...)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	own := nodeFeedSubject + engine.NodeID(a.key.Public().(ed25519.PublicKey))
	cons, err := js.OrderedConsumer(ctx, natslog.FeedsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"gavel.feed.map", own}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy})
	if err != nil {
		nc.Close()
		return nil, err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if m.Subject() == own {
			var f struct {
				InMap        bool   `json:"in_map"`
				NodeInfoHash string `json:"node_info_hash"`
			}
			if json.Unmarshal(m.Data(), &f) != nil || f.InMap {
				return
			}
			a.left.Store(f.NodeInfoHash)
		}
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return func() { cc.Stop(); nc.Close() }, nil
}

func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

package perf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/handlers"
)

// FailoverConfig sets a failover benchmark's size.
type FailoverConfig struct {
	Dir       string // scratch folder (removed afterwards by the caller)
	Requests  int    // registrations in each throughput run
	Clients   int    // concurrent requesters in the throughput runs
	Stepdowns int    // planned primary changes measured
	LeaseTTL  time.Duration
	Sequencer sequencer.Config
	Logger    *slog.Logger
}

// DefaultFailoverConfig is what `gavel bench failover` runs.
func DefaultFailoverConfig(dir string) FailoverConfig {
	return FailoverConfig{Dir: dir, Requests: 5000, Clients: 128, Stepdowns: 5, LeaseTTL: replica.DefaultLeaseTTL,
		Sequencer: sequencer.DefaultConfig()}
}

// FailoverReport is the result of a failover benchmark. A gap is the time
// between two consecutive acknowledged writes of one writer that writes
// one statement at a time through a follower.
type FailoverReport struct {
	SinglePerSec  float64         `json:"single_replica_per_sec"`
	ClusterPerSec float64         `json:"three_replicas_per_sec"`
	Ratio         float64         `json:"ratio"` // target ≥ 0.5
	PlannedGaps   []time.Duration `json:"planned_gaps"`
	PlannedMax    time.Duration   `json:"planned_max_gap"` // target ≤ 300 ms
	CrashGap      time.Duration   `json:"crash_gap"`       // target ≤ 7 s
	Acknowledged  int             `json:"acknowledged"`
	Lost          int             `json:"lost"`
	Duplicates    int             `json:"duplicates"`
	Errors        int64           `json:"errors"`
}

// RunFailover measures single- against three-replica throughput, the write
// gap of planned primary changes and of a primary's crash, on a
// three-server JetStream cluster on loopback in this process.
func RunFailover(ctx context.Context, cfg FailoverConfig) (*FailoverReport, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	rep := &FailoverReport{}
	statements, err := signStatements(max(cfg.Requests, 1), 256)
	if err != nil {
		return nil, err
	}
	_, client, stop, err := serve(ctx, replica.Config{DataDir: filepath.Join(cfg.Dir, "single"), Sequencer: cfg.Sequencer, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	rep.SinglePerSec, _, rep.Errors, err = closedLoop(ctx, client, statements, cfg.Requests, cfg.Clients)
	stop()
	if err != nil {
		return nil, err
	}

	cl, err := startCluster(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer cl.close()
	var errs int64
	rep.ClusterPerSec, _, errs, err = closedLoop(ctx, cl.client, statements, cfg.Requests, cfg.Clients)
	rep.Errors += errs
	if err != nil {
		return nil, err
	}
	rep.Ratio = rep.ClusterPerSec / rep.SinglePerSec

	// Gaps: a writer one statement at a time, through a follower.
	fresh, err := signStatements(2000, 64)
	if err != nil {
		return nil, err
	}
	w := cl.startWriter(fresh)
	for range cfg.Stepdowns {
		p, err := cl.primary(ctx)
		if err != nil {
			return nil, err
		}
		w.waitMore(ctx, 20)
		before := w.count()
		if err := cl.reps[p].StepDown(ctx, cl.ids[(p+1)%3]); err != nil {
			return nil, err
		}
		w.waitMore(ctx, 20)
		gap := w.maxGapSince(before - 1)
		rep.PlannedGaps = append(rep.PlannedGaps, gap)
		rep.PlannedMax = max(rep.PlannedMax, gap)
	}
	// The crash: the primary's replica and its server stop; the client is
	// connected to server 0, which is kept.
	p, err := cl.primary(ctx)
	if err != nil {
		return nil, err
	}
	if p == 0 {
		if err := cl.reps[0].StepDown(ctx, cl.ids[1]); err != nil {
			return nil, err
		}
		if p, err = cl.primary(ctx); err != nil {
			return nil, err
		}
	}
	w.waitMore(ctx, 20)
	before := w.count()
	cl.reps[p].Close()
	cl.servers[p].Shutdown()
	cl.reps[p], cl.servers[p] = nil, nil
	w.waitMore(ctx, 20)
	rep.CrashGap = w.maxGapSince(before - 1)
	acked, werrs := w.finish()
	rep.Errors += werrs
	rep.Acknowledged = len(acked)
	rep.Lost, rep.Duplicates, err = cl.audit(ctx, acked)
	return rep, err
}

type cluster struct {
	servers []*natslog.Embedded
	reps    []*replica.Replica
	ids     []string
	srvs    []*handlers.NATS
	client  *nats.Conn
}

// startServers starts the three clustered servers on freshly reserved
// route ports.
func (cl *cluster) startServers(dirs []string) error {
	routes := make([]string, len(dirs))
	for i := range routes {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		routes[i] = "nats-route://" + l.Addr().String()
		l.Close()
	}
	for i, d := range dirs {
		unlabel := labelInstance(clusterInstance(i)) // CPU by instance (replicated.go)
		e, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: filepath.Join(d, "nats"), Listen: "127.0.0.1:0",
			ServerName: fmt.Sprintf("bench-%d", i), MaxPayload: replica.MaxEntryBytes,
			Cluster: &natslog.ClusterConfig{Name: "gavel-bench", Listen: routes[i][len("nats-route://"):], Routes: routes}})
		unlabel()
		if err != nil {
			return err
		}
		cl.servers[i] = e
	}
	return nil
}

func startCluster(ctx context.Context, cfg FailoverConfig) (_ *cluster, err error) {
	cl := &cluster{servers: make([]*natslog.Embedded, 3), reps: make([]*replica.Replica, 3)}
	defer func() {
		if err != nil {
			cl.close()
		}
	}()
	dirs := make([]string, 3)
	for i := range dirs {
		dirs[i] = filepath.Join(cfg.Dir, fmt.Sprintf("r%d", i))
	}
	seeds, err := natslog.LoadOrCreateSeeds(filepath.Join(dirs[0], "nats"))
	if err != nil {
		return nil, err
	}
	for _, d := range dirs[1:] {
		if err := os.MkdirAll(filepath.Join(d, "nats"), 0o700); err != nil {
			return nil, err
		}
		for u := range seeds.Keys {
			b, err := os.ReadFile(seeds.File(u))
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(d, "nats", u.SeedFile()), b, 0o600); err != nil {
				return nil, err
			}
		}
	}
	// A reserved route port can be taken before its server binds it: then
	// the whole cluster starts again on fresh ports.
	for attempt := 0; ; attempt++ {
		if err = cl.startServers(dirs); err == nil || attempt == 2 {
			break
		}
		for i, e := range cl.servers {
			if e != nil {
				e.Shutdown()
				cl.servers[i] = nil
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if err := waitMeta(ctx, cl.servers); err != nil {
		return nil, err
	}
	now := time.Now()
	id, err := replica.LoadOrCreateIdentity(dirs[0], now)
	if err != nil {
		return nil, err
	}
	if _, err := replica.CreateMapIdentity(dirs[0], id, now); err != nil {
		return nil, err
	}
	var records []engine.NodeRecord
	for i, d := range dirs {
		if i > 0 {
			if err := replica.CopyServiceIdentity(dirs[0], d); err != nil {
				return nil, err
			}
		}
		n, err := replica.LoadOrCreateNodeIdentity(d, now)
		if err != nil {
			return nil, err
		}
		cl.ids = append(cl.ids, n.ID)
		records = append(records, n.Record())
	}
	for i, d := range dirs {
		rc := replica.Config{DataDir: d, NATS: cl.servers[i], StreamReplicas: 3, Sequencer: cfg.Sequencer,
			Logger: cfg.Logger.With("replica", i), Lease: replica.LeaseConfig{TTL: cfg.LeaseTTL}}
		rc.Netmap.Nodes = records[1:]
		unlabel := labelInstance(clusterInstance(i))
		r, err := replica.Open(ctx, rc)
		if err != nil {
			unlabel()
			return nil, err
		}
		cl.reps[i] = r
		natsCfg := handlers.DefaultNATSConfig(cfg.Sequencer.WithDefaults().QueueSize, handlers.DefaultLimits())
		natsCfg.HasInterest = r.HasInterest
		srv, err := handlers.ServeNATS(r.HandlerConn(), r, handlers.DefaultLimits(), natsCfg, cfg.Logger)
		unlabel()
		if err != nil {
			return nil, err
		}
		cl.srvs = append(cl.srvs, srv)
	}
	opt, err := natslog.ConnectOptions(cl.reps[0].ClientCredsFile(natslog.UserMember))
	if err != nil {
		return nil, err
	}
	cl.client, err = nats.Connect(cl.reps[0].NATSURL(), opt, nats.Name("gavel-bench"))
	return cl, err
}

// waitMeta waits until the meta leader counts all servers as peers.
func waitMeta(ctx context.Context, servers []*natslog.Embedded) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		for _, e := range servers {
			if s := e.Server(); s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == len(servers) {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("no JetStream meta leader with every server as a peer")
}

// primary waits until exactly one replica sequences.
func (cl *cluster) primary(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		p, n := -1, 0
		for i, r := range cl.reps {
			if r != nil && r.IsPrimary() {
				p, n = i, n+1
			}
		}
		if n == 1 {
			return p, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return -1, errors.New("no single primary")
}

func (cl *cluster) close() {
	if cl.client != nil {
		cl.client.Close()
	}
	for _, s := range cl.srvs {
		s.Stop()
	}
	for _, r := range cl.reps {
		if r != nil {
			r.Close()
		}
	}
	for _, e := range cl.servers {
		if e != nil {
			e.Shutdown()
		}
	}
}

// audit counts acknowledged statements missing from the surviving
// replicas' states, and statements there more than once.
func (cl *cluster) audit(ctx context.Context, acked map[engine.TxID]bool) (lost, dups int, err error) {
	for _, r := range cl.reps {
		if r == nil {
			continue
		}
		p, err := cl.primary(ctx)
		if err != nil {
			return 0, 0, err
		}
		top := cl.reps[p].Store().Meta().Seqno
		if err := r.WaitApplied(ctx, engine.TxID{Seqno: top}); err != nil {
			return 0, 0, err
		}
		st := r.Store()
		seen := map[engine.Digest]int{}
		for s := uint64(1); s <= top; s++ {
			rec, ok, err := st.Leaf(s)
			if err != nil || !ok {
				return 0, 0, fmt.Errorf("leaf %d: %v", s, err)
			}
			if rec.Kind == engine.KindStatement {
				seen[rec.ClaimsDigest]++
			}
		}
		l := 0
		for tx := range acked {
			if rec, ok, _ := st.Leaf(tx.Seqno); !ok || rec.View != tx.View || rec.Kind != engine.KindStatement {
				l++
			}
		}
		d := 0
		for _, n := range seen {
			d += n - 1
		}
		lost, dups = max(lost, l), max(dups, d)
	}
	return lost, dups, nil
}

// gapWriter registers distinct statements one at a time until finished.
type gapWriter struct {
	mu    sync.Mutex
	times []time.Time
	acked map[engine.TxID]bool
	errs  int64
	stop  chan struct{}
	done  chan struct{}
}

func (cl *cluster) startWriter(sts [][]byte) *gapWriter {
	w := &gapWriter{acked: map[engine.TxID]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			msg, err := cl.client.Request(handlers.SubjectStatement, sts[i%len(sts)], 30*time.Second)
			var reg struct {
				TxID string `json:"txid"`
			}
			if err == nil && msg.Header.Get(handlers.StatusHeader) == "201" && json.Unmarshal(msg.Data, &reg) == nil {
				if tx, err := engine.ParseTxID(reg.TxID); err == nil {
					w.mu.Lock()
					w.times = append(w.times, time.Now())
					w.acked[tx] = true
					w.mu.Unlock()
					continue
				}
			}
			w.mu.Lock()
			w.errs++
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *gapWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.times)
}

// waitMore waits for n more acknowledgements.
func (w *gapWriter) waitMore(ctx context.Context, n int) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	target := w.count() + n
	for w.count() < target && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
	}
}

// maxGapSince is the longest gap between acknowledgements from index i on.
func (w *gapWriter) maxGapSince(i int) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var gap time.Duration
	for k := max(i, 0) + 1; k < len(w.times); k++ {
		gap = max(gap, w.times[k].Sub(w.times[k-1]))
	}
	return gap
}

func (w *gapWriter) finish() (map[engine.TxID]bool, int64) {
	close(w.stop)
	<-w.done
	return w.acked, w.errs
}

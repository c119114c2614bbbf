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
	"github.com/gavelhq/gavel/engine/cose"
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
	// Retries counts writes sent again after a lost answer (the ledger
	// did not hold them); Resolved, lost answers whose write the ledger
	// held (acknowledged with the txid found there, never sent again).
	Retries  int64 `json:"retries"`
	Resolved int64 `json:"resolved"`
	// Reads and ReadsFailed count a reader's reads through a follower
	// during the primary changes (target: none failed).
	Reads       int64 `json:"reads"`
	ReadsFailed int64 `json:"reads_failed"`
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
	w, err := cl.startWriter(fresh)
	if err != nil {
		return nil, err
	}
	// Replica 0 is never the one that crashes: it reads throughout.
	rd := startReader(cl.reps[0], w)
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
	cl.crash(p)
	w.waitMore(ctx, 20)
	rep.CrashGap = w.maxGapSince(before - 1)
	rep.Reads, rep.ReadsFailed = rd.finish()
	res := w.finish()
	rep.Errors += res.errs
	rep.Retries, rep.Resolved = res.retries, res.resolved
	rep.Acknowledged = len(res.acked)
	rep.Lost, rep.Duplicates, err = cl.audit(ctx, res.acked)
	return rep, err
}

type cluster struct {
	servers []*natslog.Embedded
	mu      sync.Mutex // guards reps against the writer's reads during a crash
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

// crash stops replica p and its server (the server's raft leaders step
// down first, as at any graceful stop). Its request handler goes with it
// unstopped: a request it held dies there (its client retries), and
// stopping it would wait out that request's deadline.
func (cl *cluster) crash(p int) {
	cl.mu.Lock()
	r := cl.reps[p]
	cl.reps[p], cl.srvs[p] = nil, nil
	cl.mu.Unlock()
	r.Close()
	cl.servers[p].Shutdown()
	cl.servers[p] = nil
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
		if s != nil {
			s.Stop()
		}
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

// The gap writer's bounds. An attempt whose answer does not come within
// attemptTimeout is in doubt: the replica that took it may have died with
// it (a NATS queue group hands a request to any replica, the primary
// included), or a live one may still be forwarding it.
const (
	attemptTimeout = time.Second
	// resolveWindow is how long after a primary is up a timed-out attempt
	// held by a live replica has to land before it counts as dropped: a
	// follower's forwarding retries every few milliseconds once the lease
	// names the new primary.
	resolveWindow = time.Second
	// writeDeadline bounds one write, retries included.
	writeDeadline = time.Minute
	resolvePoll   = 5 * time.Millisecond
)

// errRefused is a write the service refused with a 4xx: sending it again
// cannot help.
var errRefused = errors.New("perf: the service refused the write")

// gapWriter registers distinct statements one at a time until finished,
// through one connection per server, retrying a write whose answer is lost
// on the next server's connection. A retry is sent only once the ledger
// says the first attempt did not land, so a write counts once: found in
// the ledger, it is acknowledged with the txid found there.
type gapWriter struct {
	cl    *cluster
	conns []*nats.Conn

	mu       sync.Mutex
	times    []time.Time
	acked    map[engine.TxID]bool
	last     engine.TxID
	errs     int64
	retries  int64
	resolved int64
	stop     chan struct{}
	done     chan struct{}
}

func (cl *cluster) startWriter(sts [][]byte) (*gapWriter, error) {
	w := &gapWriter{cl: cl, acked: map[engine.TxID]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, r := range cl.reps {
		opt, err := natslog.ConnectOptions(r.ClientCredsFile(natslog.UserMember))
		if err != nil {
			w.closeConns()
			return nil, err
		}
		// One inbox per request: an abandoned attempt loses its reply
		// subject's interest, and a replica that has not started it yet
		// drops it instead of committing it behind the retry.
		nc, err := nats.Connect(r.NATSURL(), opt, nats.Name("gavel-bench-writer"), nats.UseOldRequestStyle())
		if err != nil {
			w.closeConns()
			return nil, err
		}
		w.conns = append(w.conns, nc)
	}
	go func() {
		defer close(w.done)
		defer w.closeConns()
		at := 0
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			tx, next, err := w.write(sts[i%len(sts)], at)
			at = next
			w.mu.Lock()
			if err == nil {
				w.times = append(w.times, time.Now())
				w.acked[tx] = true
				if tx.Seqno > w.last.Seqno {
					w.last = tx
				}
			} else {
				w.errs++
			}
			w.mu.Unlock()
		}
	}()
	return w, nil
}

func (w *gapWriter) closeConns() {
	for _, nc := range w.conns {
		nc.Close()
	}
}

// write registers st, first through connection at; it returns the
// connection to use next (the next server's after a lost answer).
func (w *gapWriter) write(st []byte, at int) (engine.TxID, int, error) {
	cd, err := cose.ClaimsDigest(st)
	if err != nil {
		return engine.TxID{}, at, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeDeadline)
	defer cancel()
	for {
		nc := w.conns[at]
		tx, err := register(nc, st)
		if err == nil || errors.Is(err, errRefused) {
			return tx, at, err
		}
		// Lost (the replica holding it died, or the primary is changing):
		// find out whether it landed before sending it again elsewhere.
		at = (at + 1) % len(w.conns)
		if tx, ok := w.cl.resolve(ctx, cd); ok {
			w.mu.Lock()
			w.resolved++
			w.mu.Unlock()
			return tx, at, nil
		}
		if ctx.Err() != nil {
			return engine.TxID{}, at, fmt.Errorf("no write within %v: %w", writeDeadline, err)
		}
		w.mu.Lock()
		w.retries++
		w.mu.Unlock()
	}
}

// register is one attempt: the txid of a 201, errRefused for a 4xx, any
// other error for an answer that may still come or never will.
func register(nc *nats.Conn, st []byte) (engine.TxID, error) {
	msg, err := nc.Request(handlers.SubjectStatement, st, attemptTimeout)
	if err != nil {
		return engine.TxID{}, err
	}
	status := msg.Header.Get(handlers.StatusHeader)
	if status == "201" {
		var reg struct {
			TxID string `json:"txid"`
		}
		if err := json.Unmarshal(msg.Data, &reg); err != nil {
			return engine.TxID{}, fmt.Errorf("%w: answer %q", errRefused, msg.Data)
		}
		tx, err := engine.ParseTxID(reg.TxID)
		if err != nil {
			return tx, fmt.Errorf("%w: %v", errRefused, err)
		}
		return tx, nil
	}
	if len(status) == 3 && status[0] == '4' {
		return engine.TxID{}, fmt.Errorf("%w: status %s: %s", errRefused, status, msg.Data)
	}
	return engine.TxID{}, fmt.Errorf("status %s: %s", status, msg.Data)
}

// resolve looks for the statement with claims digest cd in the live
// replicas' ledgers until it is found, or a primary has been up for
// resolveWindow without it landing (then the attempt was dropped).
func (cl *cluster) resolve(ctx context.Context, cd engine.Digest) (engine.TxID, bool) {
	var up time.Time
	for ctx.Err() == nil {
		tx, found, primary := cl.lookup(ctx, cd)
		if found {
			return tx, true
		}
		switch {
		case !primary:
			up = time.Time{}
		case up.IsZero():
			up = time.Now()
		case time.Since(up) > resolveWindow:
			return engine.TxID{}, false
		}
		time.Sleep(resolvePoll)
	}
	return engine.TxID{}, false
}

// lookup asks every open replica for the statement, holding the lock so
// that none closes meanwhile; primary says whether one of them sequences.
func (cl *cluster) lookup(ctx context.Context, cd engine.Digest) (tx engine.TxID, found, primary bool) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, r := range cl.reps {
		if r == nil {
			continue
		}
		if tx, ok, err := r.StatementByClaimsDigest(ctx, cd); err == nil && ok {
			return tx, true, true
		}
		primary = primary || r.IsPrimary()
	}
	return tx, false, primary
}

func (w *gapWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.times)
}

// lastAcked is the writer's latest acknowledged txid (zero before any).
func (w *gapWriter) lastAcked() engine.TxID {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
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

// writerResult is what the gap writer did.
type writerResult struct {
	acked             map[engine.TxID]bool
	errs              int64
	retries, resolved int64
}

func (w *gapWriter) finish() writerResult {
	close(w.stop)
	<-w.done
	return writerResult{acked: w.acked, errs: w.errs, retries: w.retries, resolved: w.resolved}
}

// reader reads through one replica until finished, as a client watching
// the service would: the network, the last commit and its status, and the
// receipt of the writer's latest write (still pending is an answer).
type reader struct {
	reads, failed int64
	stop, done    chan struct{}
}

func startReader(r *replica.Replica, w *gapWriter) *reader {
	rd := &reader{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(rd.done)
		for {
			select {
			case <-rd.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := r.Network(ctx)
			if err == nil {
				var tx engine.TxID
				if tx, err = r.Committed(ctx); err == nil {
					_, err = r.TransactionStatus(ctx, tx)
				}
			}
			// The writer's own write, acknowledged through any replica:
			// read here as ?min_txid= would.
			if tx := w.lastAcked(); err == nil && tx.Seqno > 0 {
				if err = r.WaitApplied(ctx, tx); err == nil {
					if _, err = r.Receipt(ctx, tx); engine.KindOf(err) == engine.KindPending {
						err = nil
					}
				}
			}
			cancel()
			rd.reads++
			if err != nil {
				rd.failed++
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return rd
}

func (rd *reader) finish() (reads, failed int64) {
	close(rd.stop)
	<-rd.done
	return rd.reads, rd.failed
}

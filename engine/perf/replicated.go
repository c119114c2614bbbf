package perf

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/pprof/profile"
	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/handlers"
)

// ReplicatedConfig sets a replicated-commit benchmark's size.
type ReplicatedConfig struct {
	Dir          string // scratch folder (removed afterwards by the caller)
	Requests     int    // registrations in each measured run
	Clients      int    // concurrent requesters
	Rounds       int    // alternations of the single- and three-replica runs
	PayloadBytes int
	Sequencer    sequencer.Config
	LeaseTTL     time.Duration
	Logger       *slog.Logger
	// ProfileDir, when set, receives each run's CPU profile
	// (ROUND-RUN.pprof; its samples carry the gavel-instance label).
	ProfileDir string
}

// DefaultReplicatedConfig is what `gavel bench replicated` runs.
func DefaultReplicatedConfig(dir string) ReplicatedConfig {
	return ReplicatedConfig{Dir: dir, Requests: 5000, Clients: 256, Rounds: 3, PayloadBytes: 256,
		Sequencer: sequencer.DefaultConfig(), LeaseTTL: replica.DefaultLeaseTTL}
}

// ReplicatedReport compares durable registration on three replicas (a
// 3-server JetStream cluster, R3 streams, SyncAlways) with one replica, in
// alternating runs of one process: clients writing through the primary's
// server, and through a follower's (which forwards to the primary).
type ReplicatedReport struct {
	Requests int `json:"requests"`
	Clients  int `json:"clients"`
	Rounds   int `json:"rounds"`
	// Per round, in the order run: single, via the primary, via a follower.
	Single   []float64 `json:"single_per_sec"`
	Primary  []float64 `json:"via_primary_per_sec"`
	Follower []float64 `json:"via_follower_per_sec"`
	// The medians, and their ratios to the single replica's (target ≥ 0.5).
	SingleMedian   float64 `json:"single_median_per_sec"`
	PrimaryMedian  float64 `json:"via_primary_median_per_sec"`
	FollowerMedian float64 `json:"via_follower_median_per_sec"`
	PrimaryRatio   float64 `json:"via_primary_vs_single"`
	FollowerRatio  float64 `json:"via_follower_vs_single"`
	// Latencies of the last round's runs.
	SingleLatency   Latency `json:"single_latency"`
	PrimaryLatency  Latency `json:"via_primary_latency"`
	FollowerLatency Latency `json:"via_follower_latency"`
	// CPU is where each kind of run spent the process's CPU, summed over
	// its rounds, by instance (a replica with its NATS server).
	CPU []RunCPU `json:"cpu"`
	// Memory is what each instance held at the end: released when it was
	// closed. The process's own figures, with every instance open, are
	// beside it (clients and shared caches included).
	Memory           []InstanceMemory `json:"memory"`
	ProcessHeapBytes int64            `json:"process_heap_bytes"`
	ProcessRSSBytes  int64            `json:"process_rss_bytes"`
	Errors           int64            `json:"errors"`
	// PrimaryName is the primary's instance. LeaderFound is the instance
	// whose server led the ledger stream's raft group after the warm-up:
	// a fresh cluster's first primary leaves it where JetStream put it, and
	// when they differ every append takes one more hop. The runs are
	// measured with the leader on the primary's server, where the replica
	// moves it at every later change of primary; LedgerLeader is where it
	// was during them ("" if it moved).
	PrimaryName  string `json:"primary"`
	PrimaryKept  bool   `json:"primary_kept"` // false: the lease moved during the runs
	LeaderFound  string `json:"ledger_stream_leader_found"`
	LedgerLeader string `json:"ledger_stream_leader"`
}

// RunCPU is one kind of run's CPU by instance.
type RunCPU struct {
	Run       string        `json:"run"` // single, via primary, via follower
	Instances []InstanceCPU `json:"instances"`
}

// InstanceCPU is the CPU of one instance during a run: the goroutines of
// its replica and of its NATS server ("clients and runtime" is the rest:
// the benchmark's requesters, the garbage collector's workers, timers).
type InstanceCPU struct {
	Name     string        `json:"name"`
	Role     string        `json:"role"`
	Cores    float64       `json:"cores"`     // CPU time over the runs' wall-clock time
	PerEntry time.Duration `json:"per_entry"` // CPU time per registration
}

// InstanceMemory is the memory an instance held at the end of the run:
// the Go heap in use and the resident set it released when closed (after
// a collection, and the heap returned to the OS).
type InstanceMemory struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	HeapBytes int64  `json:"heap_bytes"`
	RSSBytes  int64  `json:"rss_bytes"`
}

// instanceLabel is the profiler label that names the instance a goroutine
// works for.
const instanceLabel = "gavel-instance"

// labelInstance labels the goroutines the caller starts from now on (and
// those they start) as instance name's, until restore is called.
func labelInstance(name string) (restore func()) {
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels(instanceLabel, name)))
	return func() { pprof.SetGoroutineLabels(context.Background()) }
}

// RunReplicated measures registration on one replica and on three, in
// cfg.Rounds alternations of three closed-loop runs of cfg.Requests
// distinct statements each: the single replica, the cluster through its
// primary's server, and the cluster through a follower's.
func RunReplicated(ctx context.Context, cfg ReplicatedConfig) (*ReplicatedReport, error) {
	if cfg.Requests <= 0 || cfg.Clients <= 0 || cfg.Rounds <= 0 {
		return nil, engine.Errorf(engine.KindInvalid, "InvalidBenchmark", "requests, clients and rounds must be positive")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if cfg.PayloadBytes <= 0 {
		cfg.PayloadBytes = 256
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = replica.DefaultLeaseTTL
	}
	// Every run registers new statements: the cluster's two runs a round
	// take 2·Rounds·Requests of them, the single replica the first half.
	warm := min(cfg.Requests, 500)
	sts, err := signParallel(2*(cfg.Rounds*cfg.Requests+warm), cfg.PayloadBytes)
	if err != nil {
		return nil, err
	}
	batch := func(i int) [][]byte { return sts[i*cfg.Requests : (i+1)*cfg.Requests] }
	warmSingle, warmCluster := sts[len(sts)-2*warm:len(sts)-warm], sts[len(sts)-warm:]

	restore := labelInstance("single")
	_, singleClient, stopSingle, err := serve(ctx, replica.Config{DataDir: filepath.Join(cfg.Dir, "single"), Sequencer: cfg.Sequencer, Logger: cfg.Logger})
	restore()
	if err != nil {
		return nil, err
	}
	defer stopSingle()
	cl, err := startCluster(ctx, FailoverConfig{Dir: filepath.Join(cfg.Dir, "cluster"), Sequencer: cfg.Sequencer, Logger: cfg.Logger, LeaseTTL: cfg.LeaseTTL})
	if err != nil {
		return nil, err
	}
	defer cl.close()
	p, err := cl.primary(ctx)
	if err != nil {
		return nil, err
	}
	f := (p + 1) % 3
	clusterClient, err := cl.connect(p)
	if err != nil {
		return nil, err
	}
	defer clusterClient.Close()
	role := func(i int) string {
		switch i {
		case p:
			return "primary"
		case f:
			return "follower (written through)"
		}
		return "follower"
	}

	rep := &ReplicatedReport{Requests: cfg.Requests, Clients: cfg.Clients, Rounds: cfg.Rounds}
	// A short warm-up of each, unmeasured.
	if _, _, _, err := registerLoop(ctx, "warm-up: single", singleClient, warmSingle, cfg.Clients); err != nil {
		return nil, err
	}
	if err := cl.serveOnly(ctx, p, p, cfg); err != nil {
		return nil, err
	}
	if _, _, _, err := registerLoop(ctx, "warm-up: three replicas", clusterClient, warmCluster, cfg.Clients); err != nil {
		return nil, err
	}
	type run struct {
		name  string
		nc    *nats.Conn
		serve int // the replica serving the clients' requests; -1: single
		batch func(round int) [][]byte
		rates *[]float64
		lat   *Latency
		cpu   map[string]time.Duration
		wall  time.Duration
	}
	runs := []*run{
		{name: "single", nc: singleClient, serve: -1, batch: func(k int) [][]byte { return batch(k) }, rates: &rep.Single, lat: &rep.SingleLatency},
		{name: "via primary", nc: clusterClient, serve: p, batch: func(k int) [][]byte { return batch(2 * k) }, rates: &rep.Primary, lat: &rep.PrimaryLatency},
		{name: "via follower", nc: clusterClient, serve: f, batch: func(k int) [][]byte { return batch(2*k + 1) }, rates: &rep.Follower, lat: &rep.FollowerLatency},
	}
	rep.PrimaryName, rep.LeaderFound = clusterInstance(p), cl.ledgerLeader()
	if err := cl.leaderTo(ctx, p); err != nil {
		return nil, err
	}
	rep.LedgerLeader = cl.ledgerLeader()
	for k := range cfg.Rounds {
		for _, r := range runs {
			if r.serve >= 0 {
				if err := cl.serveOnly(ctx, r.serve, p, cfg); err != nil {
					return nil, err
				}
			}
			var buf bytes.Buffer
			if err := pprof.StartCPUProfile(&buf); err != nil {
				return nil, fmt.Errorf("CPU profile (is another running?): %w", err)
			}
			start := time.Now()
			rate, lat, errs, err := registerLoop(ctx, fmt.Sprintf("round %d: %s", k+1, r.name), r.nc, r.batch(k), cfg.Clients)
			r.wall += time.Since(start)
			pprof.StopCPUProfile()
			if err != nil {
				return nil, err
			}
			if cfg.ProfileDir != "" {
				name := fmt.Sprintf("%d-%s.pprof", k+1, strings.ReplaceAll(r.name, " ", "-"))
				if err := os.WriteFile(filepath.Join(cfg.ProfileDir, name), buf.Bytes(), 0o644); err != nil {
					return nil, err
				}
			}
			*r.rates, *r.lat = append(*r.rates, rate), lat
			rep.Errors += errs
			byInstance, err := cpuByLabel(buf.Bytes())
			if err != nil {
				return nil, err
			}
			if r.cpu == nil {
				r.cpu = map[string]time.Duration{}
			}
			for name, d := range byInstance {
				r.cpu[name] += d
			}
		}
	}
	rep.PrimaryKept = cl.reps[p].IsPrimary()
	if cl.ledgerLeader() != rep.LedgerLeader {
		rep.LedgerLeader = ""
	}
	rep.SingleMedian, rep.PrimaryMedian, rep.FollowerMedian = median(rep.Single), median(rep.Primary), median(rep.Follower)
	rep.PrimaryRatio, rep.FollowerRatio = rep.PrimaryMedian/rep.SingleMedian, rep.FollowerMedian/rep.SingleMedian
	entries := time.Duration(cfg.Rounds * cfg.Requests)
	for _, r := range runs {
		rc := RunCPU{Run: r.name}
		add := func(name, role string) {
			rc.Instances = append(rc.Instances, InstanceCPU{Name: name, Role: role, Cores: r.cpu[name].Seconds() / r.wall.Seconds(), PerEntry: r.cpu[name] / entries})
		}
		if r.name == "single" {
			add("single", "the only replica")
		} else {
			for i := range 3 {
				add(clusterInstance(i), role(i))
			}
		}
		add("", "clients and runtime")
		rep.CPU = append(rep.CPU, rc)
	}

	// Memory: what each instance releases when it closes; the followers
	// first, so that no election runs while one is measured.
	before := memorySnapshot()
	rep.ProcessHeapBytes, rep.ProcessRSSBytes = before.heap, before.rss
	for _, i := range []int{3 - p - f, f, p} {
		cl.closeOne(i)
		after := memorySnapshot()
		rep.Memory = append(rep.Memory, InstanceMemory{Name: clusterInstance(i), Role: role(i), HeapBytes: before.heap - after.heap, RSSBytes: before.rss - after.rss})
		before = after
	}
	stopSingle()
	after := memorySnapshot()
	rep.Memory = append(rep.Memory, InstanceMemory{Name: "single", Role: "the only replica", HeapBytes: before.heap - after.heap, RSSBytes: before.rss - after.rss})
	return rep, nil
}

func clusterInstance(i int) string { return fmt.Sprintf("r%d", i) }

// registerLoop registers every statement of sts once, from clients
// concurrent requesters, reporting progress as phase.
func registerLoop(ctx context.Context, phase string, nc *nats.Conn, sts [][]byte, clients int) (float64, Latency, int64, error) {
	return closedLoopOf(ctx, phase, len(sts), clients, func(i int) error {
		return call(nc, handlers.SubjectStatement, "201", sts[i])
	})
}

// connect connects a member client to replica i's own server.
func (cl *cluster) connect(i int) (*nats.Conn, error) {
	opt, err := natslog.ConnectOptions(cl.reps[i].ClientCredsFile(natslog.UserMember))
	if err != nil {
		return nil, err
	}
	return nats.Connect(cl.reps[i].NATSURL(), opt, nats.Name(fmt.Sprintf("gavel-bench-r%d", i)))
}

// ledgerLeader is the instance whose server leads the ledger stream.
func (cl *cluster) ledgerLeader() string {
	for i, e := range cl.servers {
		if e != nil && e.Server().GlobalAccount().JetStreamIsStreamLeader(natslog.LedgerStream) {
			return clusterInstance(i)
		}
	}
	return ""
}

// leaderTo moves the ledger stream's leader to replica i's server, if it
// is elsewhere, and waits until it is there.
func (cl *cluster) leaderTo(ctx context.Context, i int) error {
	if cl.ledgerLeader() == clusterInstance(i) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := natslog.StepdownStream(ctx, cl.reps[i].SequencerConn(), natslog.LedgerStream, cl.servers[i].Server().Name()); err != nil {
		return fmt.Errorf("moving the ledger stream leader to %s: %w", clusterInstance(i), err)
	}
	for cl.ledgerLeader() != clusterInstance(i) {
		if ctx.Err() != nil {
			return fmt.Errorf("the ledger stream leader never reached %s", clusterInstance(i))
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// serveOnly makes replica i's handlers the only ones that serve client
// requests: a queue group spreads requests over every server of a
// cluster, so a run through one replica stops the others' handlers.
func (cl *cluster) serveOnly(ctx context.Context, i, client int, cfg ReplicatedConfig) error {
	for _, s := range cl.srvs {
		s.Stop()
	}
	// Routes carry the change of interest: wait until no server sees a
	// handler left, then until the client's server sees the new one.
	interest := func(j int) int { return cl.servers[j].Server().GlobalAccount().Interest(handlers.SubjectStatement) }
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for j := range cl.servers {
		for interest(j) != 0 {
			if ctx.Err() != nil {
				return fmt.Errorf("server %d still routes registrations to a stopped handler", j)
			}
			time.Sleep(time.Millisecond)
		}
	}
	r := cl.reps[i]
	natsCfg := handlers.DefaultNATSConfig(cfg.Sequencer.WithDefaults().QueueSize, handlers.DefaultLimits())
	natsCfg.HasInterest = r.HasInterest
	restore := labelInstance(clusterInstance(i))
	srv, err := handlers.ServeNATS(r.HandlerConn(), r, handlers.DefaultLimits(), natsCfg, cfg.Logger)
	restore()
	if err != nil {
		return err
	}
	cl.srvs[i] = srv
	for interest(client) == 0 {
		if ctx.Err() != nil {
			return fmt.Errorf("the client's server never saw replica %d's handler", i)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// closeOne closes replica i, its handlers and its server.
func (cl *cluster) closeOne(i int) {
	if i < len(cl.srvs) {
		cl.srvs[i].Stop() // idempotent: close stops it again
	}
	if cl.reps[i] != nil {
		cl.reps[i].Close()
		cl.reps[i] = nil
	}
	if cl.servers[i] != nil {
		cl.servers[i].Shutdown()
		cl.servers[i] = nil
	}
}

// cpuByLabel sums a CPU profile's samples by instance label ("" for
// goroutines without one).
func cpuByLabel(b []byte) (map[string]time.Duration, error) {
	prof, err := profile.Parse(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	idx := slices.IndexFunc(prof.SampleType, func(t *profile.ValueType) bool { return t.Type == "cpu" })
	if idx < 0 {
		return nil, fmt.Errorf("CPU profile has no cpu samples")
	}
	out := map[string]time.Duration{}
	for _, s := range prof.Sample {
		name := ""
		if v := s.Label[instanceLabel]; len(v) > 0 {
			name = v[0]
		}
		out[name] += time.Duration(s.Value[idx])
	}
	return out, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// memory is the process's Go heap in use and resident set.
type memory struct{ heap, rss int64 }

// memorySnapshot collects garbage, returns what it can to the OS, and
// reads the Go heap in use and the resident set (VmRSS; 0 where
// /proc/self/status has none).
func memorySnapshot() memory {
	runtime.GC() // objects with finalizers are freed by the second
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memory{heap: int64(ms.HeapInuse), rss: residentSet()}
}

// residentSet is the process's resident set size now.
func residentSet() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

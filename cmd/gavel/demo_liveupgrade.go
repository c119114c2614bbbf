package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/audit"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/receipt"
	"github.com/gavelhq/gavel/engine/replica"
)

func init() {
	register("demo live-upgrade", "replace every replica of a clustered service by replicas of a new code version under continuous load, and measure it", runDemoLiveUpgrade)
}

// The live upgrade (issue 11 item 7) runs the seed's code upgrade
// procedure on gavel itself, every replica a child `gavel serve`: three
// replicas on code A, a client writing and reading throughout, members
// trust B, three B replicas join, the A replicas are retired one by one
// (the primary last, so primary-ship moves once, to a B replica), become
// removable and are deleted. The client drains a replica (stops sending
// it anything) before its retirement is proposed, as a load balancer
// would. What it measures is LiveUpgradeReport.

// LiveUpgradeReport is what gavel demo live-upgrade --json prints.
type LiveUpgradeReport struct {
	Replicas []LiveUpgradeReplica `json:"replicas"`
	// WritesAcknowledged counts statements whose registration was
	// answered (202 with its txid), or found in the ledger when a retry
	// looked for it; each statement once.
	WritesAcknowledged int `json:"writes_acknowledged"`
	// WritesRetried counts attempts sent again to another replica after a
	// connection error or a 503; WritesFoundOnRetry those a retry found
	// already in the ledger.
	WritesRetried      int `json:"writes_retried"`
	WritesFoundOnRetry int `json:"writes_found_on_retry"`
	// WritesRefused are registrations refused outright (4xx), or given up
	// after a minute of retries: never acknowledged.
	WritesRefused int      `json:"writes_refused"`
	WriteErrors   []string `json:"write_errors,omitempty"` // the first few refusals
	// WritesLost counts acknowledged statements whose receipt, fetched
	// from each remaining replica at the end, does not verify under the
	// service key for the statement sent.
	WritesLost int `json:"writes_lost"`
	// Duplicates counts statement entries in the ledger beyond one per
	// statement that landed (the replay's statement count against the
	// statements acknowledged or found).
	Duplicates  int      `json:"duplicates"`
	Reads       int64    `json:"reads"`
	ReadsFailed int64    `json:"reads_failed"`
	ReadErrors  []string `json:"read_errors,omitempty"` // the first few
	// PrimaryChanges are the primary changes the client saw, each with the
	// longest write gap around it.
	PrimaryChanges []LiveUpgradePrimaryChange `json:"primary_changes"`
	// Steps are the retirements, each with the longest write gap while it
	// ran.
	Steps []LiveUpgradeStep `json:"steps"`
	// LongestWriteGapMs is the longest time without an acknowledged write
	// while the client ran.
	LongestWriteGapMs float64 `json:"longest_write_gap_ms"`
	FinalPrimary      string  `json:"final_primary"`
	FinalPrimaryCode  string  `json:"final_primary_code_version"`
	// StreamPeers are the servers holding each stream at the end, and
	// whether they are all B replicas' servers.
	StreamPeers      map[string][]string `json:"stream_peers"`
	StreamPeersAllB  bool                `json:"stream_peers_all_b"`
	RemovedNodes     []string            `json:"removed_nodes"`
	ReplayRoots      map[string]string   `json:"replay_roots"`
	ReplayLastTxIDs  map[string]string   `json:"replay_last_txids"`
	ReplayStatements uint64              `json:"replay_statements"`
	RootsEqual       bool                `json:"roots_equal"`
	TookSeconds      float64             `json:"took_s"`
}

// LiveUpgradeReplica is one replica of the run.
type LiveUpgradeReplica struct {
	Name        string `json:"name"`
	NodeID      string `json:"node_id"`
	CodeVersion string `json:"code_version"`
	Server      string `json:"server"`
	HTTP        string `json:"http"`
	Final       string `json:"final"` // Trusted (serving), or deleted
}

// LiveUpgradePrimaryChange is one primary change the client saw.
type LiveUpgradePrimaryChange struct {
	From              string    `json:"from"`
	To                string    `json:"to"`
	LongestWriteGapMs float64   `json:"longest_write_gap_ms"`
	GapFrom           time.Time `json:"gap_from"`
}

// LiveUpgradeStep is one retirement.
type LiveUpgradeStep struct {
	Retired           string  `json:"retired"`
	WasPrimary        bool    `json:"was_primary"`
	PrimaryAfter      string  `json:"primary_after"`
	Seconds           float64 `json:"took_s"`
	LongestWriteGapMs float64 `json:"longest_write_gap_ms"`
	// GapFrom is when that gap began, in UTC (to find it in the logs).
	GapFrom time.Time `json:"gap_from"`
}

func runDemoLiveUpgrade(args []string, out, errOut io.Writer) int {
	fs := newFlags("demo live-upgrade", errOut)
	keep := fs.String("dir", "", "folder for the replicas' data and logs (default: a temporary one, removed after)")
	asJSON := fs.Bool("json", false, "print one JSON object (the narration goes to stderr)")
	writers := fs.Int("writers", 3, "concurrent writers, each one statement at a time")
	pause := fs.Duration("pause", 20*time.Millisecond, "each writer's pause between statements")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(errOut, fs, "no arguments are taken")
	}
	if *writers < 1 || *writers > 64 {
		return usageError(errOut, fs, "--writers %d is out of range 1..64", *writers)
	}
	dir := *keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "gavel-live-upgrade-")
		if err != nil {
			return failf(errOut, "%v", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	bin, err := os.Executable()
	if err != nil {
		return failf(errOut, "%v", err)
	}
	narrate := out
	if *asJSON {
		narrate = errOut
	}
	u := &liveUpgrade{bin: bin, dir: dir, out: narrate, writers: *writers, pause: *pause, start: time.Now()}
	rep, err := u.run(context.Background())
	if err != nil {
		fmt.Fprintf(errOut, "gavel demo live-upgrade: %v\n", err)
		u.showLogs(errOut)
		return exitFailed
	}
	if *asJSON {
		return printJSON(out, rep)
	}
	printLiveUpgrade(out, rep)
	if failed := rep.verdict(); failed != "" {
		return failf(errOut, "%s", failed)
	}
	return exitOK
}

// verdict is "" when the run kept every promise that is not a timing
// target, else what it broke.
func (r *LiveUpgradeReport) verdict() string {
	var bad []string
	if r.WritesLost != 0 {
		bad = append(bad, fmt.Sprintf("%d writes lost", r.WritesLost))
	}
	if r.Duplicates != 0 {
		bad = append(bad, fmt.Sprintf("%d duplicates", r.Duplicates))
	}
	if r.ReadsFailed != 0 {
		bad = append(bad, fmt.Sprintf("%d reads failed", r.ReadsFailed))
	}
	if !r.RootsEqual {
		bad = append(bad, "replay roots differ")
	}
	if !r.StreamPeersAllB {
		bad = append(bad, "a stream is held by a server that is not a B replica's")
	}
	return strings.Join(bad, ", ")
}

func printLiveUpgrade(out io.Writer, r *LiveUpgradeReport) {
	fmt.Fprintln(out, "\nReplicas")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tCODE\tNODE\tSERVER\tFINAL")
	for _, x := range r.Replicas {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", x.Name, x.CodeVersion, x.NodeID[:16], x.Server, x.Final)
	}
	tw.Flush()
	fmt.Fprintln(out, "\nRetirements")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  RETIRED\tWAS PRIMARY\tPRIMARY AFTER\tTOOK\tLONGEST WRITE GAP")
	for _, s := range r.Steps {
		fmt.Fprintf(tw, "  %s\t%v\t%s\t%.1f s\t%.0f ms\n", s.Retired, s.WasPrimary, s.PrimaryAfter, s.Seconds, s.LongestWriteGapMs)
	}
	tw.Flush()
	fmt.Fprintln(out, "\nFigures")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "  %s\t%v\n", k, v) }
	row("writes acknowledged", r.WritesAcknowledged)
	row("writes retried on another replica", fmt.Sprintf("%d (%d found already in the ledger)", r.WritesRetried, r.WritesFoundOnRetry))
	row("writes refused", r.WritesRefused)
	row("writes lost", r.WritesLost)
	row("duplicates", r.Duplicates)
	row("reads", r.Reads)
	row("reads failed", r.ReadsFailed)
	for _, c := range r.PrimaryChanges {
		row("longest write gap, primary "+c.From+" → "+c.To, fmt.Sprintf("%.0f ms", c.LongestWriteGapMs))
	}
	row("longest write gap, whole run", fmt.Sprintf("%.0f ms", r.LongestWriteGapMs))
	row("final primary", r.FinalPrimary+" (code "+r.FinalPrimaryCode+")")
	for _, s := range slices.Sorted(maps.Keys(r.StreamPeers)) {
		row("stream "+s, strings.Join(r.StreamPeers[s], " "))
	}
	row("streams on B servers only", r.StreamPeersAllB)
	row("removed nodes", len(r.RemovedNodes))
	for _, n := range slices.Sorted(maps.Keys(r.ReplayRoots)) {
		row("replay root via "+n, r.ReplayRoots[n][:16]+"… at "+r.ReplayLastTxIDs[n])
	}
	row("replay roots equal", r.RootsEqual)
	row("took", fmt.Sprintf("%.0f s", r.TookSeconds))
	tw.Flush()
}

// luReplica is one child gavel serve.
type luReplica struct {
	name, code, dir string
	cmd             *exec.Cmd
	logPath         string
	done            chan struct{} // closed when the process has exited
	nodeID          string
	ep              endpoints
	c               *client.Client
}

func (x *luReplica) exited() bool {
	select {
	case <-x.done:
		return true
	default:
		return false
	}
}

// stop asks the process to stop (SIGTERM) and waits; SIGKILL after 30 s.
func (x *luReplica) stop() error {
	if x.exited() {
		return nil
	}
	x.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-x.done:
	case <-time.After(30 * time.Second):
		x.cmd.Process.Kill()
		<-x.done
		return fmt.Errorf("%s did not stop within 30 s of SIGTERM", x.name)
	}
	if c := x.cmd.ProcessState.ExitCode(); c != 0 {
		return fmt.Errorf("%s exited with %d", x.name, c)
	}
	return nil
}

type liveUpgrade struct {
	bin, dir string
	out      io.Writer
	writers  int
	pause    time.Duration
	start    time.Time

	mu      sync.Mutex
	reps    []*luReplica
	pool    []*luReplica // what the client sends to
	serving []*luReplica // what the primary watcher asks

	member  *govreq.Member
	load    *luLoad
	step    int
	windows [][2]time.Time // each retirement, from its drain until the cluster settled
}

func (u *liveUpgrade) say(format string, args ...any) {
	u.step++
	fmt.Fprintf(u.out, "%2d. [%5.1f s] %s\n", u.step, time.Since(u.start).Seconds(), fmt.Sprintf(format, args...))
}

func (u *liveUpgrade) clientPool() []*luReplica {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.pool)
}

func (u *liveUpgrade) servingReplicas() []*luReplica {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.serving)
}

// showLogs prints the tail of every replica's log.
func (u *liveUpgrade) showLogs(w io.Writer) {
	u.mu.Lock()
	reps := slices.Clone(u.reps)
	u.mu.Unlock()
	for _, x := range reps {
		b, _ := os.ReadFile(x.logPath)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		fmt.Fprintf(w, "--- %s (%s), last %d lines:\n%s\n", x.name, x.logPath, len(lines), strings.Join(lines, "\n"))
	}
}

// spawn starts gavel serve for a replica named name on code, with its
// data and its log (name.log) under the run's folder.
func (u *liveUpgrade) spawn(name, code string, extra ...string) (*luReplica, error) {
	x := &luReplica{name: name, code: code, dir: filepath.Join(u.dir, name), logPath: filepath.Join(u.dir, name+".log"), done: make(chan struct{})}
	if err := os.MkdirAll(u.dir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(x.logPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--data", x.dir, "--code-version", code, "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0",
		"--cluster-listen", "127.0.0.1:0", "--sign-interval", "10ms"}, extra...)
	x.cmd = exec.Command(u.bin, args...)
	x.cmd.Stdout, x.cmd.Stderr = logf, logf
	x.cmd.SysProcAttr = childProcAttr()
	if err := x.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { x.cmd.Wait(); logf.Close(); close(x.done) }()
	u.mu.Lock()
	u.reps = append(u.reps, x)
	u.mu.Unlock()
	return x, nil
}

// waitServing waits until the replica wrote endpoints.json (it serves).
func (u *liveUpgrade) waitServing(x *luReplica, limit time.Duration) error {
	if err := luWait(x.name+" serving (endpoints.json)", limit, x, func() bool {
		b, err := os.ReadFile(filepath.Join(x.dir, "endpoints.json"))
		return err == nil && json.Unmarshal(b, &x.ep) == nil && x.ep.HTTP != ""
	}); err != nil {
		return err
	}
	x.c = client.New(x.ep.HTTP, client.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if x.nodeID == "" {
		id, err := replica.LoadNodeIdentity(x.dir)
		if err != nil {
			return err
		}
		x.nodeID = id.ID
	}
	u.mu.Lock()
	u.serving = append(u.serving, x)
	u.pool = append(u.pool, x)
	u.mu.Unlock()
	return nil
}

// luWait polls cond every 20 ms for at most limit; it fails early when
// the replica x (if not nil) exits.
func luWait(what string, limit time.Duration, x *luReplica, cond func() bool) error {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return nil
		}
		if x != nil && x.exited() {
			return fmt.Errorf("waiting for %s: %s exited (%s)", what, x.name, x.cmd.ProcessState)
		}
	}
	return fmt.Errorf("timed out after %s waiting for %s", limit, what)
}

// govClients are the serving replicas, the B ones first (the A ones go).
func (u *liveUpgrade) govClients() []*luReplica {
	pool := u.clientPool()
	slices.SortStableFunc(pool, func(a, b *luReplica) int { return strings.Compare(b.code, a.code) })
	return pool
}

// govern proposes actions as member0 and votes for them. A 503 or a
// lost answer is asked again on another replica; a vote whose answer was
// lost is judged by the proposal's state.
func (u *liveUpgrade) govern(ctx context.Context, actions string) error {
	body := []byte(`{"actions":[` + actions + `]}`)
	end := time.Now().Add(time.Minute)
	var p *client.Proposal
	var err error
	for i := 0; ; i++ {
		c := u.govClient(i)
		if c == nil {
			return errors.New("no replica serves")
		}
		if p == nil {
			p, _, err = c.Propose(ctx, u.member, body)
		} else {
			id := p.ProposalID
			if p, _, err = c.Vote(ctx, u.member, id, client.AcceptBallot); err != nil {
				if now, perr := c.Proposal(ctx, id); perr == nil && now.State != "Open" {
					p, err = now, nil
				} else {
					p = &client.Proposal{ProposalID: id, State: "Open"}
				}
			}
		}
		switch {
		case err == nil && p.State == "Accepted":
			return nil
		case err == nil && p.State != "Open":
			return fmt.Errorf("proposal %s is %s", p.ProposalID, p.State)
		case err != nil && engine.KindOf(err) != engine.KindUnavailable:
			return err
		case time.Now().After(end):
			return fmt.Errorf("governance did not go through within a minute: %v", err)
		case err != nil:
			if p != nil && p.ProposalID == "" {
				p = nil
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// govClient is the i-th serving replica for governance, the B ones first.
func (u *liveUpgrade) govClient(i int) *client.Client {
	pool := u.govClients()
	if len(pool) == 0 {
		return nil
	}
	return pool[i%len(pool)].c
}

// join starts a replica that joins the service, waits until it is a
// Pending service node, trusts it and waits until it serves.
func (u *liveUpgrade) join(ctx context.Context, name, code string) (*luReplica, error) {
	seed := u.govClients()[0]
	x, err := u.spawn(name, code, "--join", seed.ep.HTTP)
	if err != nil {
		return nil, err
	}
	if err := luWait(name+"'s node key", time.Minute, x, func() bool {
		id, err := replica.LoadNodeIdentity(x.dir)
		if err == nil {
			x.nodeID = id.ID
		}
		return err == nil
	}); err != nil {
		return nil, err
	}
	if err := luWait(name+" Pending as a service node", 2*time.Minute, x, func() bool {
		v, err := seed.c.Node(ctx, x.nodeID)
		return err == nil && v.Status == "Pending" && v.Role == "service"
	}); err != nil {
		return nil, err
	}
	if err := u.govern(ctx, `{"name":"transition_node_to_trusted","args":{"node_id":"`+x.nodeID+`"}}`); err != nil {
		return nil, fmt.Errorf("trust %s: %w", name, err)
	}
	if err := u.waitServing(x, 2*time.Minute); err != nil {
		return nil, err
	}
	u.say("%s (code %s) joined Pending as %s…, was trusted by member0 and serves at %s", name, code, x.nodeID[:16], x.ep.HTTP)
	return x, nil
}

// primary is the serving replica that answers GET /node/primary with 200,
// or nil.
func (u *liveUpgrade) primary(ctx context.Context) *luReplica {
	for _, x := range u.servingReplicas() {
		if _, err := x.c.Do(ctx, http.MethodGet, "/node/primary", "", nil); err == nil {
			return x
		}
	}
	return nil
}

func (u *liveUpgrade) run(ctx context.Context) (*LiveUpgradeReport, error) {
	rep := &LiveUpgradeReport{StreamPeers: map[string][]string{}, ReplayRoots: map[string]string{}, ReplayLastTxIDs: map[string]string{}}
	defer u.stopAll()
	fmt.Fprintf(u.out, "A live code upgrade of a gavel service: every replica a gavel serve process, data and logs in %s\n\n", u.dir)

	a1, err := u.spawn("a1", "A", "--cluster")
	if err != nil {
		return nil, err
	}
	if err := u.waitServing(a1, 2*time.Minute); err != nil {
		return nil, err
	}
	if u.member, err = loadMember0(a1.dir); err != nil {
		return nil, err
	}
	u.say("a1 (code A) started the service: gavel serve --cluster, serving at %s", a1.ep.HTTP)
	for _, n := range []string{"a2", "a3"} {
		if _, err := u.join(ctx, n, "A"); err != nil {
			return nil, err
		}
	}
	certPEM, err := os.ReadFile(filepath.Join(a1.dir, replica.ServiceCertFile))
	if err != nil {
		return nil, err
	}
	serviceKey, err := receiptKey(certPEM)
	if err != nil {
		return nil, err
	}
	peers, err := u.waitStreams(ctx, "the streams on the three A servers", func(string) bool { return true })
	if err != nil {
		return nil, err
	}
	u.say("the streams are R3 on the A servers: %s", strings.Join(peers, " "))

	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		return nil, err
	}
	u.load = newLuLoad(iss, u.clientPool, u.servingReplicas)
	u.load.start(u.writers, u.pause)
	defer u.load.halt()
	if err := luWait("the first acknowledged writes", time.Minute, nil, func() bool { return u.load.acked() >= 10 }); err != nil {
		return nil, err
	}
	u.say("a client writes signed statements (%d writers, retrying on another replica) and reads receipts and proposals, over every serving replica", u.writers)

	if err := u.govern(ctx, `{"name":"add_virtual_host_data","args":{"host_data":"`+replica.VirtualHostData("B")+`","metadata":"gavel code version B"}}`); err != nil {
		return nil, err
	}
	u.say("members trust code version B (add_virtual_host_data %s…)", replica.VirtualHostData("B")[:16])
	for _, n := range []string{"b1", "b2", "b3"} {
		if _, err := u.join(ctx, n, "B"); err != nil {
			return nil, err
		}
	}
	trusted, err := u.govClients()[0].c.Nodes(ctx, "Trusted", "")
	if err != nil {
		return nil, err
	}
	u.say("%d Trusted service nodes (f = 2)", len(trusted))

	for range 3 {
		if err := u.retireOne(ctx, rep); err != nil {
			return nil, err
		}
	}

	p := u.primary(ctx)
	if err := luWait("a primary among the B replicas", time.Minute, nil, func() bool { p = u.primary(ctx); return p != nil }); err != nil {
		return nil, err
	}
	rep.FinalPrimary, rep.FinalPrimaryCode = p.name, p.code
	// A last stretch of writes on the B replicas alone.
	if err := luWait("writes on the B replicas", time.Minute, nil, func() bool { return u.load.ackedSince(time.Now().Add(-time.Second)) > 0 }); err != nil {
		return nil, err
	}
	u.load.halt()
	u.say("the client stops: %d writes acknowledged, %d reads (%d failed)", u.load.acked(), u.load.reads.Load(), u.load.readsFailed.Load())

	if err := u.finalChecks(ctx, rep, serviceKey); err != nil {
		return nil, err
	}
	u.report(rep)
	rep.TookSeconds = time.Since(u.start).Seconds()
	return rep, nil
}

// retireOne drains an A replica (a follower while one is left, else the
// primary), retires it, waits until it is removable, deletes it and stops
// its process.
func (u *liveUpgrade) retireOne(ctx context.Context, rep *LiveUpgradeReport) error {
	p := u.primary(ctx)
	var x *luReplica
	for _, s := range u.servingReplicas() {
		if s.code == "A" && (x == nil || x == p) {
			x = s
		}
	}
	if x == nil {
		return errors.New("no A replica left to retire")
	}
	began := time.Now()
	u.mu.Lock()
	u.pool = slices.DeleteFunc(u.pool, func(r *luReplica) bool { return r == x })
	u.mu.Unlock()
	if err := u.govern(ctx, `{"name":"remove_node","args":{"node_id":"`+x.nodeID+`"}}`); err != nil {
		return fmt.Errorf("retire %s: %w", x.name, err)
	}
	var gov *luReplica
	if err := luWait(x.name+" removable", 2*time.Minute, nil, func() bool {
		gov = u.govClients()[0]
		rm, err := gov.c.RemovableNodes(ctx)
		return err == nil && slices.ContainsFunc(rm, func(v client.NodeView) bool { return v.NodeID == x.nodeID })
	}); err != nil {
		return err
	}
	if err := gov.c.DeleteNode(ctx, x.nodeID); err != nil {
		return fmt.Errorf("delete %s: %w", x.name, err)
	}
	u.mu.Lock()
	u.serving = slices.DeleteFunc(u.serving, func(r *luReplica) bool { return r == x })
	u.mu.Unlock()
	if err := x.stop(); err != nil {
		return err
	}
	rep.RemovedNodes = append(rep.RemovedNodes, x.nodeID)
	took := time.Since(began)
	after := u.primary(ctx)
	if err := luWait("a primary after retiring "+x.name, time.Minute, nil, func() bool { after = u.primary(ctx); return after != nil }); err != nil {
		return err
	}
	// The next step waits for a settled cluster, as an operator would:
	// every stream three current replicas off the retired server, and
	// writes flowing.
	gone := replica.ServerName(x.nodeID)
	if _, err := u.waitStreams(ctx, "the streams settled without "+x.name, func(s string) bool { return s != gone }); err != nil {
		return err
	}
	settled := time.Now()
	if err := luWait("writes after retiring "+x.name, time.Minute, nil, func() bool { return u.load.ackedSince(settled) >= 20 }); err != nil {
		return err
	}
	u.windows = append(u.windows, [2]time.Time{began, time.Now()})
	rep.Steps = append(rep.Steps, LiveUpgradeStep{Retired: x.name, WasPrimary: x == p, PrimaryAfter: after.name, Seconds: took.Seconds()})
	role := "a follower"
	if x == p {
		role = "the primary"
	}
	u.say("%s (%s) drained, retired (remove_node), removable, deleted (DELETE /node/network/nodes/%s…) and stopped in %.1f s; primary %s; streams settled",
		x.name, role, x.nodeID[:16], took.Seconds(), after.name)
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// natsConn connects to replica x's NATS server as user.
func natsConn(x *luReplica, user natslog.User) (*nats.Conn, error) {
	opt, err := natslog.ConnectOptions(filepath.Join(x.dir, "nats", user.SeedFile()))
	if err != nil {
		return nil, err
	}
	return nats.Connect(x.ep.NATS, opt)
}

// leaseStream is the stream behind the primary's lease bucket.
const leaseStream = "KV_" + natslog.LeaseBucket

// streamPeerSets are the replicas of the ledger, feeds and lease
// streams (the leader first), asked through a serving replica's server
// (the lease's as its replica user: only that user reads it).
func (u *liveUpgrade) streamPeerSets(ctx context.Context) (map[string][]natslog.Peer, error) {
	pool := u.govClients()
	if len(pool) == 0 {
		return nil, errors.New("no replica serves")
	}
	out := map[string][]natslog.Peer{}
	for _, q := range []struct {
		user    natslog.User
		streams []string
	}{{natslog.UserAuditor, []string{natslog.LedgerStream, natslog.FeedsStream}}, {natslog.UserReplica, []string{leaseStream}}} {
		nc, err := natsConn(pool[0], q.user)
		if err != nil {
			return nil, err
		}
		for _, s := range q.streams {
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			set, err := natslog.StreamPeerSet(c, nc, s)
			cancel()
			if errors.Is(err, jetstream.ErrStreamNotFound) && s == leaseStream {
				continue // a service that never had a lease
			}
			if err != nil {
				nc.Close()
				return nil, fmt.Errorf("stream %s: %w", s, err)
			}
			out[s] = set
		}
		nc.Close()
	}
	return out, nil
}

// waitStreams waits until every stream has three current replicas, each
// on a server ok accepts; it returns the ledger's servers.
func (u *liveUpgrade) waitStreams(ctx context.Context, what string, ok func(server string) bool) ([]string, error) {
	var ledger []string
	err := luWait(what, 2*time.Minute, nil, func() bool {
		sets, err := u.streamPeerSets(ctx)
		if err != nil {
			return false
		}
		for name, set := range sets {
			if len(set) != 3 {
				return false
			}
			var names []string
			for _, p := range set {
				if !p.Current || !ok(p.Name) {
					return false
				}
				names = append(names, p.Name)
			}
			if name == natslog.LedgerStream {
				slices.Sort(names)
				ledger = names
			}
		}
		return len(sets) > 0
	})
	return ledger, err
}

// finalChecks: the streams are on B servers only; every acknowledged
// receipt verifies on every remaining replica; the ledger holds each
// landed statement once; each B replica's server replays the ledger to
// the same root.
func (u *liveUpgrade) finalChecks(ctx context.Context, rep *LiveUpgradeReport, key any) error {
	names := map[string]string{}
	for _, x := range u.servingReplicas() {
		names[replica.ServerName(x.nodeID)] = x.name
	}
	_, err := u.waitStreams(ctx, "the streams on B servers only", func(server string) bool { return strings.HasPrefix(names[server], "b") })
	sets, serr := u.streamPeerSets(ctx)
	rep.StreamPeersAllB = err == nil && serr == nil
	for s, set := range sets {
		var held []string
		for _, p := range set {
			n, ok := names[p.Name]
			if !ok || !strings.HasPrefix(n, "b") {
				rep.StreamPeersAllB = false
				n = p.Name
			}
			held = append(held, n)
		}
		slices.Sort(held)
		rep.StreamPeers[s] = held
	}
	if !rep.StreamPeersAllB {
		u.say("the streams are not on B servers only: %v (%v %v)", rep.StreamPeers, err, serr)
	} else {
		u.say("the streams' peers are the B servers only, all current")
	}

	// Every replica's last signature covers everything written.
	serving := u.servingReplicas()
	if err := luWait("every replica's last entry signed", time.Minute, nil, func() bool {
		var last string
		for _, x := range serving {
			n, err := x.c.Network(ctx)
			if err != nil || n.LastTxID == "" || n.LastSignedTxID != n.LastTxID || (last != "" && n.LastTxID != last) {
				return false
			}
			last = n.LastTxID
		}
		return true
	}); err != nil {
		return err
	}
	acks := u.load.acknowledged()
	seen := map[string]bool{}
	for _, a := range acks {
		if seen[a.txid] {
			rep.Duplicates++ // two statements under one txid
		}
		seen[a.txid] = true
	}
	lost, errs := make([]int, len(serving)), make([]error, len(serving))
	var wg sync.WaitGroup
	for i, x := range serving {
		wg.Add(1)
		go func() { defer wg.Done(); lost[i], errs[i] = verifyReceipts(ctx, x, key, acks) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	rep.WritesLost = slices.Max(lost)
	u.say("every acknowledged write's receipt verified on %d replicas: %d lost", len(serving), rep.WritesLost)

	landed := len(acks)
	for _, st := range u.load.unacknowledged() {
		cd, _ := cose.ClaimsDigest(st)
		if _, ok, err := serving[0].c.FindStatement(ctx, cd); err != nil {
			return err
		} else if ok {
			landed++
		}
	}
	replays := make([]luReplaySummary, len(serving))
	for i, x := range serving {
		wg.Add(1)
		go func() { defer wg.Done(); replays[i], errs[i] = u.replay(x) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, x := range serving {
		rep.ReplayRoots[x.name], rep.ReplayLastTxIDs[x.name] = replays[i].Root, replays[i].LastTxID
		rep.ReplayStatements = replays[i].Statements
	}
	rep.Duplicates += max(int(rep.ReplayStatements)-landed, 0)
	rep.RootsEqual = len(rep.ReplayRoots) == len(serving)
	for _, x := range serving {
		if rep.ReplayRoots[x.name] != rep.ReplayRoots[serving[0].name] || rep.ReplayLastTxIDs[x.name] != rep.ReplayLastTxIDs[serving[0].name] {
			rep.RootsEqual = false
		}
	}
	u.say("gavel audit replay through each B replica's server: %d statements in the ledger for %d landed; roots equal: %v", rep.ReplayStatements, landed, rep.RootsEqual)
	return nil
}

// verifyReceipts fetches every acknowledged statement's receipt from x and
// counts those that do not verify.
func verifyReceipts(ctx context.Context, x *luReplica, key any, acks []luAck) (int, error) {
	var lost atomic.Int64
	var firstErr error
	var mu sync.Mutex
	work := make(chan luAck)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range work {
				rc, err := x.c.Receipt(ctx, a.txid+"?min_txid="+a.txid, 30*time.Second)
				if err == nil {
					cd, _ := cose.ClaimsDigest(a.st)
					if _, verr := receipt.VerifyWithClaimsDigest(rc, key, cd); verr == nil {
						continue
					}
				} else if engine.KindOf(err) != engine.KindNotFound {
					mu.Lock()
					firstErr = cmpOr(firstErr, fmt.Errorf("receipt of %s on %s: %w", a.txid, x.name, err))
					mu.Unlock()
					continue
				}
				lost.Add(1)
			}
		}()
	}
	for _, a := range acks {
		work <- a
	}
	close(work)
	wg.Wait()
	return int(lost.Load()), firstErr
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// luReplaySummary is gavel audit replay's answer.
type luReplaySummary struct {
	Verified bool `json:"verified"`
	audit.Summary
}

// replay runs gavel audit replay through x's NATS server as its auditor.
func (u *liveUpgrade) replay(x *luReplica) (luReplaySummary, error) {
	var s luReplaySummary
	cmd := exec.Command(u.bin, "audit", "replay", "--nats", x.ep.NATS, "--creds", filepath.Join(x.dir, "nats", natslog.UserAuditor.SeedFile()))
	var errOut strings.Builder
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if jerr := json.Unmarshal(out, &s); err != nil || jerr != nil || !s.Verified {
		return s, fmt.Errorf("gavel audit replay via %s: %v %s %s", x.name, err, out, errOut.String())
	}
	return s, nil
}

func (u *liveUpgrade) report(rep *LiveUpgradeReport) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, x := range u.reps {
		final := "deleted"
		if slices.Contains(u.serving, x) {
			final = "Trusted, serving"
		}
		rep.Replicas = append(rep.Replicas, LiveUpgradeReplica{Name: x.name, NodeID: x.nodeID, CodeVersion: x.code,
			Server: replica.ServerName(x.nodeID), HTTP: x.ep.HTTP, Final: final})
	}
	l := u.load
	l.mu.Lock()
	defer l.mu.Unlock()
	rep.WritesAcknowledged = len(l.acks)
	rep.WritesRetried, rep.WritesFoundOnRetry, rep.WritesRefused = l.retried, l.foundOnRetry, len(l.unacked)
	rep.WriteErrors = slices.Clone(l.writeErrs)
	rep.Reads, rep.ReadsFailed, rep.ReadErrors = l.reads.Load(), l.readsFailed.Load(), slices.Clone(l.readErrs)
	gap, _ := l.longestGapLocked(time.Time{}, time.Now())
	rep.LongestWriteGapMs = ms(gap)
	for i, w := range u.windows {
		gap, from := l.longestGapLocked(w[0], w[1])
		rep.Steps[i].LongestWriteGapMs, rep.Steps[i].GapFrom = ms(gap), from.UTC()
	}
	for _, c := range l.changes {
		gap, from := l.longestGapLocked(c.lastOld, c.firstNew)
		rep.PrimaryChanges = append(rep.PrimaryChanges, LiveUpgradePrimaryChange{From: c.from, To: c.to,
			LongestWriteGapMs: ms(gap), GapFrom: from.UTC()})
	}
}

// stopAll stops every replica still running, the last ones first.
func (u *liveUpgrade) stopAll() {
	u.mu.Lock()
	reps := slices.Clone(u.reps)
	u.mu.Unlock()
	var wg sync.WaitGroup
	for _, x := range reps {
		wg.Add(1)
		go func() { defer wg.Done(); x.stop() }()
	}
	wg.Wait()
}

func loadMember0(dir string) (*govreq.Member, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, replica.Member0CertFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, replica.Member0KeyFile))
	if err != nil {
		return nil, err
	}
	return govreq.LoadMember(certPEM, keyPEM)
}

// luAck is an acknowledged statement.
type luAck struct {
	txid string
	st   []byte
	at   time.Time
}

// luChange is a primary change the watcher saw: the old primary was last
// seen at lastOld, the new one first at firstNew.
type luChange struct {
	from, to          string
	lastOld, firstNew time.Time
}

// luLoad is the client: writers, readers and a primary watcher over the
// serving replicas.
type luLoad struct {
	iss     *issuer.Issuer
	pool    func() []*luReplica
	serving func() []*luReplica
	stop    chan struct{}
	halted  sync.Once
	wg      sync.WaitGroup

	mu           sync.Mutex
	acks         []luAck
	unacked      [][]byte // statements never acknowledged
	retried      int
	foundOnRetry int
	changes      []luChange
	readErrs     []string
	writeErrs    []string

	reads, readsFailed atomic.Int64
}

func newLuLoad(iss *issuer.Issuer, pool, serving func() []*luReplica) *luLoad {
	return &luLoad{iss: iss, pool: pool, serving: serving, stop: make(chan struct{})}
}

func (l *luLoad) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *luLoad) start(writers int, pause time.Duration) {
	for w := range writers {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.write(w, pause) }()
	}
	for r := range 2 {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.read(r) }()
	}
	l.wg.Add(1)
	go func() { defer l.wg.Done(); l.watch() }()
}

// halt stops the client and waits for it; once.
func (l *luLoad) halt() {
	l.halted.Do(func() { close(l.stop); l.wg.Wait() })
}

func (l *luLoad) write(w int, pause time.Duration) {
	ctx := context.Background()
	for i := 0; !l.stopped(); i++ {
		st, err := l.iss.Sign(fmt.Sprintf("live-upgrade/%d/%d", w, i), "text/plain", []byte("x"), time.Now())
		if err != nil {
			l.mu.Lock()
			l.unacked = append(l.unacked, nil)
			l.mu.Unlock()
			return
		}
		l.writeOne(ctx, w+i, st)
		time.Sleep(pause)
	}
}

// writeOne registers st, on the next replica after a connection error or
// a 503, looking first whether an earlier attempt landed.
func (l *luLoad) writeOne(ctx context.Context, k int, st []byte) {
	cd, _ := cose.ClaimsDigest(st)
	for attempt, end := 0, time.Now().Add(time.Minute); time.Now().Before(end); attempt++ {
		pool := l.pool()
		if len(pool) == 0 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		x := pool[(k+attempt)%len(pool)]
		if attempt > 0 {
			if tx, ok, err := x.c.FindStatement(ctx, cd); err == nil && ok {
				l.ack(tx, st, true)
				return
			}
		}
		op, err := x.c.Register(ctx, st)
		if err == nil {
			l.ack(op.OperationID, st, false)
			return
		}
		if engine.KindOf(err) != engine.KindUnavailable {
			l.mu.Lock()
			if len(l.writeErrs) < 5 {
				l.writeErrs = append(l.writeErrs, x.name+": "+err.Error())
			}
			l.mu.Unlock()
			break
		}
		l.mu.Lock()
		l.retried++
		l.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	l.mu.Lock()
	l.unacked = append(l.unacked, st)
	l.mu.Unlock()
}

func (l *luLoad) ack(txid string, st []byte, found bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acks = append(l.acks, luAck{txid: txid, st: st, at: time.Now()})
	if found {
		l.foundOnRetry++
	}
}

// read asks the serving replicas in turn for a receipt of an
// acknowledged write (as of that write: ?min_txid=) or the proposals.
func (l *luLoad) read(r int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(r), 1))
	for i := 0; !l.stopped(); i++ {
		pool := l.pool()
		if len(pool) == 0 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		x := pool[(r+i)%len(pool)]
		var err error
		if i%2 == 0 {
			l.mu.Lock()
			var tx string
			if n := len(l.acks); n > 0 {
				tx = l.acks[rng.IntN(n)].txid
			}
			l.mu.Unlock()
			if tx == "" {
				continue
			}
			// 200 with the receipt, or 202 while its signature is pending.
			_, err = x.c.Do(ctx, http.MethodGet, "/entries/"+tx+"?min_txid="+tx, "", nil)
		} else {
			_, err = x.c.Proposals(ctx, "")
		}
		l.reads.Add(1)
		if err != nil {
			l.readsFailed.Add(1)
			l.mu.Lock()
			if len(l.readErrs) < 5 {
				l.readErrs = append(l.readErrs, x.name+": "+err.Error())
			}
			l.mu.Unlock()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watch asks every serving replica GET /node/primary every 50 ms and
// records each change of the replica that answers 200.
func (l *luLoad) watch() {
	ctx := context.Background()
	var cur string
	var seen time.Time
	for !l.stopped() {
		var now string
		for _, x := range l.serving() {
			if _, err := x.c.Do(ctx, http.MethodGet, "/node/primary", "", nil); err == nil {
				now = x.name
				break
			}
		}
		t := time.Now()
		if now != "" {
			if cur != "" && now != cur {
				l.mu.Lock()
				l.changes = append(l.changes, luChange{from: cur, to: now, lastOld: seen, firstNew: t})
				l.mu.Unlock()
			}
			cur, seen = now, t
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *luLoad) acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks)
}

func (l *luLoad) ackedSince(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range slices.Backward(l.acks) {
		if a.at.Before(t) {
			break
		}
		n++
	}
	return n
}

func (l *luLoad) acknowledged() []luAck {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.acks)
}

func (l *luLoad) unacknowledged() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(l.unacked), func(b []byte) bool { return b == nil })
}

// longestGapLocked is the longest interval between consecutive
// acknowledgements that overlaps [from, to], and when it began.
func (l *luLoad) longestGapLocked(from, to time.Time) (gap time.Duration, at time.Time) {
	for i := 1; i < len(l.acks); i++ {
		a, b := l.acks[i-1].at, l.acks[i].at
		if b.Before(from) || a.After(to) {
			continue
		}
		if b.Sub(a) > gap {
			gap, at = b.Sub(a), a
		}
	}
	return gap, at
}

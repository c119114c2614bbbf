package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/handlers"
	"github.com/gavelhq/gavel/nodeagent/mapagent"
)

func init() {
	register("bench map", "measure GET /network-map against a static file of the same bytes, with N published nodes", runBenchMap)
}

func runBenchMap(args []string, out, errOut io.Writer) int {
	fs := newFlags("bench map", errOut)
	n := fs.Int("nodes", 10000, "published nodes")
	clients := fs.Int("clients", 32, "concurrent GET clients")
	dur := fs.Duration("duration", 3*time.Second, "how long each GET run lasts")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 || *n < 1 {
		return usageError(errOut, fs, "--nodes must be at least 1, and no arguments are taken")
	}
	if err := benchMap(out, errOut, *n, *clients, *dur); err != nil {
		fmt.Fprintf(errOut, "gavel bench map: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func benchMap(out, errOut io.Writer, n, clients int, dur time.Duration) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "gavel-bench-map-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// n published nodes, and one more for the node agent.
	keys := make([]ed25519.PrivateKey, n+1)
	recs := make([]engine.NodeRecord, n+1)
	for i := range keys {
		_, keys[i], _ = ed25519.GenerateKey(rand.Reader)
		recs[i] = participantRecord(keys[i])
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := replica.Open(ctx, replica.Config{DataDir: dir, NATSListen: "127.0.0.1:0", Logger: logger,
		Netmap: replica.NetmapConfig{Nodes: recs, Tick: 10 * time.Millisecond}})
	if err != nil {
		return err
	}
	defer r.Close()
	signed := func(i int, serial int64) []byte {
		b, _ := netmap.SignNodeInfo(keys[i], netmap.NodeInfo{Addresses: []string{fmt.Sprintf("10.0.%d.%d:10000", i/250, i%250)},
			LegalIdentities: []string{fmt.Sprintf("O=Node%d,L=London,C=GB", i)}, PlatformVersion: 4, Serial: serial})
		return b
	}
	// Publish every node, many at once so that group commit batches them.
	start := time.Now()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	sem := make(chan struct{}, 256)
	prog := newProgressMode(errOut, "publish", "NodeInfos", uint64(n), false)
	var progMu sync.Mutex
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := r.PublishNodeInfo(ctx, signed(i, 1)); err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
			progMu.Lock()
			prog.add(1)
			progMu.Unlock()
		}()
	}
	wg.Wait()
	prog.done()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	fmt.Fprintf(out, "published %d NodeInfos in %v (%.0f/s)\n", n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())
	t0 := time.Now()
	sm, err := r.SignedMap(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "first map: %d bytes, served in %v (the primary's feed loop keeps it current)\n", len(sm.Body), time.Since(t0).Round(time.Microsecond))
	// A rebuild, as after a flag day: the index from the state, signed.
	mapKey, err := replica.LoadMapSigner(dir)
	if err != nil {
		return err
	}
	signer, err := netmap.NewMapSigner(mapKey, [][]byte{mapCertDER(r), r.Identity().Cert.Raw})
	if err != nil {
		return err
	}
	t0 = time.Now()
	st := r.Store()
	x, err := netmap.BuildIndex(st, netmap.TableDirectory{State: st, Table: netmap.NodesDirectoryTable}, time.UnixMilli(st.Meta().TimeMillis))
	if err == nil {
		_, err = signer.Sign(x)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "the map rebuilt from the state and signed (as after a flag day): %v\n", time.Since(t0).Round(time.Microsecond))
	// One more publish: what it adds to the next GET.
	var adds []time.Duration
	for k := range 20 {
		if _, err := r.PublishNodeInfo(ctx, signed(k, 2)); err != nil {
			return err
		}
		t0 = time.Now()
		if _, err := r.SignedMap(ctx); err != nil {
			return err
		}
		adds = append(adds, time.Since(t0))
	}
	slices.Sort(adds)
	fmt.Fprintf(out, "map after one publish: median %v, max %v (the entries folded into the index, the payload encoded, one signature)\n",
		adds[len(adds)/2].Round(time.Microsecond), adds[len(adds)-1].Round(time.Microsecond))
	sm, _ = r.SignedMap(ctx)

	gavelSrv := httptest.NewServer(handlers.NewHTTP(r, handlers.DefaultLimits(), logger))
	defer gavelSrv.Close()
	body := sm.Body
	static := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.ServeContent(w, req, "network-map", time.Time{}, bytes.NewReader(body))
	}))
	defer static.Close()
	sGavel, err := getLoad(gavelSrv.URL+"/network-map", clients, dur)
	if err != nil {
		return err
	}
	sStatic, err := getLoad(static.URL+"/network-map", clients, dur)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "GET /network-map (%d clients, %v): gavel %.0f/s p99 %v; static file %.0f/s p99 %v; ratio %.0f%%\n",
		clients, dur, sGavel.rate, sGavel.p99, sStatic.rate, sStatic.p99, 100*sGavel.rate/sStatic.rate)

	if err := benchAgent(out, dir, gavelSrv.URL, keys[n], r, n); err != nil {
		return err
	}

	// A flag day at n nodes: an update voted by member0, half the nodes
	// accept, then the time from the deadline until the map shows it.
	certPEM, _ := os.ReadFile(filepath.Join(dir, replica.Member0CertFile))
	keyPEM, _ := os.ReadFile(filepath.Join(dir, replica.Member0KeyFile))
	m0, err := govreq.LoadMember(certPEM, keyPEM)
	if err != nil {
		return err
	}
	c := client.New(gavelSrv.URL)
	deadline := time.Now().Add(3*time.Second + time.Duration(n/2)*2*time.Millisecond).UTC()
	prop := `{"actions":[{"name":"set_network_parameters","args":{"description":"bench","update_deadline":"` + deadline.Format(time.RFC3339Nano) + `",` +
		`"parameters":{"minimum_platform_version":1,"notaries":[],"max_message_size":10485760,"max_transaction_size":20971520}}}]}`
	p, _, err := c.Propose(ctx, m0, []byte(prop))
	if err == nil {
		p, _, err = c.Vote(ctx, m0, p.ProposalID, "export function vote() { return true; }")
	}
	if err != nil {
		return err
	}
	pend, _, err := netmap.LoadPending(r.Store())
	if err != nil {
		return err
	}
	start = time.Now()
	for i := 0; i < n; i += 2 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ack, _ := netmap.SignAck(keys[i], pend.NewParametersHash)
			if _, err := r.AckParameters(ctx, ack); err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d acknowledgements in %v\n", (n+1)/2, time.Since(start).Round(time.Millisecond))
	if time.Now().After(deadline) {
		return fmt.Errorf("the acknowledgements took past the deadline; the flag day was not measured")
	}
	time.Sleep(time.Until(deadline))
	for {
		sm, err := r.SignedMap(ctx)
		if err != nil {
			return err
		}
		v, err := netmap.VerifyMap(sm.Body, r.Identity().Cert)
		if err != nil {
			return err
		}
		if v.Payload.NetworkParametersHash == pend.NewParametersHash {
			fmt.Fprintf(out, "flag day at %d nodes: the map showed it %v after the deadline (tick 10 ms), %d nodes stay\n",
				n, time.Since(deadline).Round(time.Millisecond), len(v.Payload.NodeInfoHashes))
			break
		}
		time.Sleep(time.Millisecond)
	}
	// The node feeds of the nodes that left: published in node id order,
	// so the last of them is the highest id among the non-acceptors (and
	// the agent's node, which did not accept either).
	last := engine.NodeID(keys[n].Public().(ed25519.PublicKey))
	for i := 1; i < n; i += 2 {
		last = max(last, engine.NodeID(keys[i].Public().(ed25519.PublicKey)))
	}
	js, err := jetstream.New(r.SequencerConn())
	if err != nil {
		return err
	}
	feeds, err := js.Stream(ctx, natslog.FeedsStream)
	if err != nil {
		return err
	}
	for {
		if m, err := feeds.GetLastMsgForSubject(ctx, replica.SubjectFeedNodes+last); err == nil {
			var f replica.NodeFeed
			if json.Unmarshal(m.Data, &f) == nil && !f.InMap {
				fmt.Fprintf(out, "node feeds: every node that left said so on gavel.feed.nodes.<id> %v after the deadline\n",
					time.Since(deadline).Round(time.Millisecond))
				return nil
			}
		}
		time.Sleep(time.Millisecond)
	}
}

// mapCertDER is the network-map certificate's DER.
func mapCertDER(r *replica.Replica) []byte {
	b, _ := pem.Decode(r.MapCertificate())
	if b == nil {
		return nil
	}
	return b.Bytes
}

// benchAgent measures the node agent's memory with the whole map in its
// cache: gavel node run as a child process (this binary) on a folder made
// for key, until it has cached every NodeInfo of the map (n others and its
// own), then stopped; its maximum resident set size is the figure.
func benchAgent(out io.Writer, dir, url string, key ed25519.PrivateKey, r *replica.Replica, n int) error {
	base := filepath.Join(dir, "agent")
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	cfg, _ := json.Marshal(mapagent.NodeConfig{LegalName: "O=Agent,L=London,C=GB", Addresses: []string{"10.1.0.1:10000"}, PlatformVersion: 4, Serial: 1})
	files := map[string][]byte{mapagent.KeyFile: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		mapagent.ConfigFile: cfg, mapagent.ServiceCertFile: r.Identity().CertPEM, mapagent.MapCertFile: r.MapCertificate()}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(base, name), b, 0o600); err != nil {
			return err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(exe, "node", "run", "--base", base, "--url", url, "--log-level", "error")
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	cached := 0
	for cached < n+1 {
		select {
		case err := <-exited:
			return fmt.Errorf("the node agent exited before caching the map (%d of %d): %v\n%s", cached, n+1, err, stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		cached = len(mapagent.CachedNodeInfos(base))
	}
	took := time.Since(start)
	// The child's own high-water mark, read before it stops: its rusage
	// would not do, as a child started by vfork carries the parent's
	// resident set into its maximum until exec.
	hwm, err := peakRSS(cmd.Process.Pid)
	cmd.Process.Signal(os.Interrupt)
	<-exited
	if err != nil {
		return fmt.Errorf("the node agent's memory: %w", err)
	}
	fmt.Fprintf(out, "node agent (gavel node run, a child process): %d NodeInfos cached in %v, peak RSS %.1f MB (VmHWM)\n",
		cached, took.Round(time.Millisecond), float64(hwm)/(1<<20))
	return nil
}

// peakRSS is a process's peak resident set size in bytes, from
// /proc/PID/status (Linux).
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmHWM", pid)
}

type loadStats struct {
	rate float64
	p99  time.Duration
}

func getLoad(url string, clients int, dur time.Duration) (loadStats, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	hc := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	end := time.Now().Add(dur)
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(end) {
				t0 := time.Now()
				resp, err := hc.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("%s: %s", url, resp.Status)
					}
				}
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return loadStats{}, firstErr
	}
	slices.Sort(lat)
	return loadStats{rate: float64(len(lat)) / dur.Seconds(), p99: lat[len(lat)*99/100].Round(time.Microsecond)}, nil
}

package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/handlers"
)

// flood holds trickling HTTP connections open against a server: each
// worker connects from one of the source addresses, sends the start of a
// request (all of a POST's headers, or half a GET's), then one byte a
// second. A connection the server answers or closes is dropped and, after
// a pause, made again, as an attacker would.
type flood struct {
	addr    string
	pause   time.Duration
	stopped chan struct{}
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool

	refused                 atomic.Int64 // 503 TooManyConnections answers
	perAddress, overall     atomic.Bool  // which cap the answers named
	dialFailed, otherAnswer atomic.Int64
}

// loopbackSources are client addresses 127.0.0.2, 127.0.0.3, …: the flood
// comes from other addresses than the registrations (127.0.0.1), as from
// other hosts. They are loopback: nothing leaves the machine.
func loopbackSources(n int) []net.IP {
	ips := make([]net.IP, n)
	for i := range ips {
		ips[i] = net.IPv4(127, 0, byte((i+2)/256), byte((i+2)%256))
	}
	return ips
}

func startFlood(addr string, sources []net.IP, workers int, pause time.Duration) *flood {
	f := &flood{addr: addr, pause: pause, stopped: make(chan struct{}), conns: map[net.Conn]bool{}}
	for i := range workers {
		f.wg.Add(1)
		go f.worker(i, sources[i%len(sources)])
	}
	return f
}

func (f *flood) worker(i int, src net.IP) {
	defer f.wg.Done()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}
	head := "POST /entries HTTP/1.1\r\nHost: gavel\r\nContent-Type: application/cose\r\nContent-Length: 1048576\r\n\r\n"
	if i%2 == 1 {
		head = "GET /node/network HTTP/1.1\r\nHost: gavel\r\nX-Slow: "
	}
	buf := make([]byte, 4096)
	for {
		if f.isStopped() {
			return
		}
		c, err := d.Dial("tcp", f.addr)
		if err != nil {
			f.dialFailed.Add(1)
			f.wait()
			continue
		}
		if !f.track(c) {
			c.Close()
			return
		}
		if _, err := io.WriteString(c, head); err == nil {
			for {
				c.SetReadDeadline(time.Now().Add(time.Second))
				n, err := c.Read(buf)
				if n > 0 {
					f.answer(buf[:n])
					break
				}
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					break // closed by the server, or by stop
				}
				if _, err := c.Write([]byte("x")); err != nil {
					break
				}
			}
		}
		f.untrack(c)
		c.Close()
		f.wait()
	}
}

func (f *flood) answer(b []byte) {
	if !bytes.Contains(b, []byte(`"TooManyConnections"`)) {
		f.otherAnswer.Add(1) // a trickler cut off by the server's read deadline
		return
	}
	f.refused.Add(1)
	if bytes.Contains(b, []byte("client address")) {
		f.perAddress.Store(true)
	}
	if bytes.Contains(b, []byte("the server holds")) {
		f.overall.Store(true)
	}
}

func (f *flood) isStopped() bool {
	select {
	case <-f.stopped:
		return true
	default:
		return false
	}
}

func (f *flood) wait() {
	select {
	case <-f.stopped:
	case <-time.After(f.pause):
	}
}

func (f *flood) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.isStopped() {
		return false
	}
	f.conns[c] = true
	return true
}

func (f *flood) untrack(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
}

// stop closes every flood connection and waits for the workers.
func (f *flood) stop() {
	f.mu.Lock()
	close(f.stopped)
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// floodCounts is what a flood saw.
type floodCounts struct {
	Refused, CutOff, DialFailed int64
	PerAddress, Overall         bool
}

func (a floodCounts) add(b floodCounts) floodCounts {
	return floodCounts{a.Refused + b.Refused, a.CutOff + b.CutOff, a.DialFailed + b.DialFailed,
		a.PerAddress || b.PerAddress, a.Overall || b.Overall}
}

// floodRun is a running flood, here or in helper processes.
type floodRun interface {
	overallSeen() bool
	finish() floodCounts // stops the flood
}

func (f *flood) overallSeen() bool { return f.overall.Load() }

func (f *flood) finish() floodCounts {
	f.stop()
	return floodCounts{f.refused.Load(), f.otherAnswer.Load(), f.dialFailed.Load(), f.perAddress.Load(), f.overall.Load()}
}

// fdCount is how many descriptors process pid holds.
func fdCount(pid int) int {
	entries, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	return len(entries)
}

// answerTally is what registrations got during a flood.
type answerTally struct {
	mu                sync.Mutex
	created, busy     int
	refusedNew, other int
	others            []string
}

// registerDuringFlood registers statements from workers clients, each on
// its own kept-alive connection, until stop; every answer is tallied. A
// transport error is allowed only on a new connection (a refused one).
func registerDuringFlood(t *testing.T, url string, iss *issuer.Issuer, reg *registrar, workers int, tally *answerTally) (stop func()) {
	var stopping atomic.Bool
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			for i := 0; !stopping.Load(); i++ {
				st, err := iss.Sign(fmt.Sprintf("flood/%d/%d", w, i), "text/plain", []byte("x"), time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				var reused bool
				req, _ := http.NewRequest("POST", url+"/entries", bytes.NewReader(st))
				req.Header.Set("Content-Type", "application/cose")
				req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
					GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
				}))
				resp, err := client.Do(req)
				tally.mu.Lock()
				switch {
				case err != nil && !reused:
					tally.refusedNew++
				case err != nil:
					tally.other++
					tally.others = append(tally.others, err.Error())
				default:
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					var res struct {
						TxID  string
						Error struct{ Code, Message string }
					}
					json.Unmarshal(body, &res)
					// A registration is answered 202 with a CBOR operation
					// once durable; its id is the entry's txid.
					var op handlers.Operation
					if resp.StatusCode == http.StatusAccepted && engine.CBORDecode.Unmarshal(body, &op) == nil {
						res.TxID = op.OperationID
					}
					switch {
					case resp.StatusCode == http.StatusAccepted && res.TxID != "":
						tally.created++
						reg.mu.Lock()
						reg.acks = append(reg.acks, acked{res.TxID, st})
						reg.mu.Unlock()
					case resp.StatusCode == http.StatusServiceUnavailable && res.Error.Code != "" && res.Error.Message != "":
						tally.busy++
					default:
						tally.other++
						tally.others = append(tally.others, fmt.Sprintf("%d %s", resp.StatusCode, body))
					}
				}
				tally.mu.Unlock()
			}
		}()
	}
	return func() { stopping.Store(true); wg.Wait() }
}

func (a *answerTally) snapshot() (created, busy, refusedNew, other int, others []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.created, a.busy, a.refusedNew, a.other, append([]string(nil), a.others...)
}

// floodCase is one descriptor-flood run against a child gavel serve.
type floodCase struct {
	fdLimit         int // the child's soft descriptor limit
	perAddressConns int // the child's per-address cap (derived from fdLimit)
	sources         int // flood client addresses
	conns           int // trickling flood connections from them
	pause           time.Duration
	duringFlood     int // registrations acknowledged while the flood runs
	registerWorkers int
	// wide starts the many-address flood; nil: in this process.
	wide func(t *testing.T, addr string, sources []net.IP, conns int, pause time.Duration) floodRun
}

// runDescriptorFlood starts gavel serve with a low descriptor limit, floods
// it with trickling connections while registrations run, then checks: the
// flood was refused by both caps and never took the descriptors (no "too
// many open files" anywhere), registrations were answered throughout
// (201, or 503 with a reason), every write works again once the flood
// ends without a restart, every acknowledged txid's receipt verifies, and
// the auditor's replay succeeds.
func runDescriptorFlood(t *testing.T, c floodCase) {
	data := t.TempDir()
	srv := startServer(t, data, "--fd-limit", strconv.Itoa(c.fdLimit), "--sign-interval", "20ms")
	pid := srv.cmd.Process.Pid
	addr := strings.TrimPrefix(srv.HTTP, "http://")
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	reg := &registrar{iss: iss}
	tally := &answerTally{}
	// Registrations hold their connections before the flood starts.
	stopRegs := registerDuringFlood(t, srv.HTTP, iss, reg, c.registerWorkers, tally)
	waitFor(t, "first registrations", func() bool { n, _, _, _, _ := tally.snapshot(); return n >= c.registerWorkers })
	created0, _, _, _, _ := tally.snapshot()

	// First one address past its share, then many past the total.
	sources := loopbackSources(c.sources + 1)
	one := startFlood(addr, sources[:1], 4*c.perAddressConns, c.pause)
	maxFDs := 0
	waitFor(t, "the per-address cap", func() bool { maxFDs = max(maxFDs, fdCount(pid)); return one.perAddress.Load() })
	var fl floodRun
	if c.wide != nil {
		fl = c.wide(t, addr, sources[1:], c.conns, c.pause)
	} else {
		fl = startFlood(addr, sources[1:], c.conns, c.pause)
	}
	waitFor(t, "the flood refused by both caps while registrations are answered", func() bool {
		maxFDs = max(maxFDs, fdCount(pid))
		created, _, _, _, _ := tally.snapshot()
		return fl.overallSeen() && created-created0 >= c.duringFlood
	})
	stopRegs()
	created, busy, refusedNew, other, others := tally.snapshot()
	n := one.finish().add(fl.finish())
	t.Logf("flood: %d connections from %d addresses and %d from one, %d answered 503, %d cut off by read deadlines, %d dials failed; "+
		"child fds at most %d of %d", c.conns, c.sources, 4*c.perAddressConns, n.Refused, n.CutOff, n.DialFailed, maxFDs, c.fdLimit)
	t.Logf("registrations during the flood: %d created, %d busy (503), %d refused new connections, %d other",
		created-created0, busy, refusedNew, other)
	if other > 0 {
		t.Fatalf("%d registrations got neither 201 nor a 503 with a reason: %q", other, others[:min(len(others), 5)])
	}
	// The caps keep half the descriptors for NATS, JetStream and pebble,
	// which use few here: a quarter of the limit always stays free.
	if maxFDs > c.fdLimit*3/4 {
		t.Fatalf("the child held %d descriptors of its %d during the flood", maxFDs, c.fdLimit)
	}

	// Writes work again on fresh connections, with no restart.
	// /node/network tells of the refusals.
	var network struct {
		HTTP struct {
			Refused     int64  `json:"refused"`
			LastRefusal string `json:"last_refusal"`
		} `json:"http_connections"`
	}
	waitFor(t, "the flood's connections released", func() bool {
		resp, err := http.Get(srv.HTTP + "/node/network")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&network) == nil
	})
	if network.HTTP.Refused < n.Refused || !strings.Contains(network.HTTP.LastRefusal, "holds its limit") {
		t.Fatalf("/node/network says %+v; the flood saw %d refusals", network.HTTP, n.Refused)
	}
	after := &registrar{iss: iss}
	client := &http.Client{Timeout: 30 * time.Second}
	for i := range 50 {
		st, _ := iss.Sign(fmt.Sprintf("after/%d", i), "text/plain", []byte("x"), time.Now())
		resp, err := client.Post(srv.HTTP+"/entries", "application/cose", bytes.NewReader(st))
		if err != nil {
			t.Fatalf("registration %d after the flood: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var op handlers.Operation
		if resp.StatusCode != http.StatusAccepted || engine.CBORDecode.Unmarshal(body, &op) != nil || op.OperationID == "" {
			t.Fatalf("registration %d after the flood: %d %x", i, resp.StatusCode, body)
		}
		after.acks = append(after.acks, acked{op.OperationID, st})
	}
	certPEM, err := os.ReadFile(filepath.Join(data, "service_cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	checkReceipts(t, srv.HTTP, certPEM, append(reg.acknowledged(), after.acks...))
	srv.stop()
	if logs := srv.logs.String(); strings.Contains(logs, "too many open files") || !strings.Contains(logs, "http connection refused") {
		t.Fatalf("server log (want refusals, no descriptor exhaustion):\n%s", logs)
	}
	if out, errOut, code := runBounded(t, "audit", "replay", "--data", data); code != 0 {
		t.Fatalf("audit replay after the flood: exit %d: %s %s", code, out, errOut)
	}
}

// waitFor polls cond until it holds; the bound only guards against a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDescriptorFlood: 56 trickling connections from one address, then 480
// from 12 more, against a replica limited to 256 descriptors (so about 115
// HTTP connections, 14 per address), while 4 clients register statements.
func TestDescriptorFlood(t *testing.T) {
	runDescriptorFlood(t, floodCase{fdLimit: 256, perAddressConns: 14, sources: 12, conns: 480, pause: 200 * time.Millisecond,
		duringFlood: 200, registerWorkers: 4})
}

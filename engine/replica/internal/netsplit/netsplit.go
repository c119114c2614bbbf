// Package netsplit partitions a JetStream cluster on loopback, for tests.
// It owns a TCP proxy in front of every server's route listener and the
// cluster of embedded servers that dial each other only through those
// proxies (each server advertises its proxy, and lists only proxies as
// routes, so no route bypasses them). A proxy learns which server dialed
// it from the route's first line (CONNECT, whose "name" is the dialer's
// server id), so one cut drops, and keeps refusing, exactly the routes
// between the two sides: the cut-off side sees its routes closed, as when
// a switch drops a host's links, and its clients stay connected to it.
//
// It is test-only code (nothing outside _test files imports it).
package netsplit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/natslog"
)

// ReadyTimeout bounds the wait for a JetStream meta leader counting every
// server.
const ReadyTimeout = 30 * time.Second

// Cluster is n embedded JetStream servers routed through proxies.
type Cluster struct {
	t       testing.TB
	Servers []*natslog.Embedded
	proxies []*proxy

	mu  sync.Mutex
	ids map[string]int // server id → index
	// side is each server's side of the cut; servers on different sides
	// have no routes to each other. All zero: healed.
	side []int
}

// Start starts n servers (n ≥ 2) behind their proxies and waits until the
// meta leader counts every server. Everything stops at the end of the test.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 2 {
		t.Fatalf("netsplit: a partition needs at least two servers, got %d", n)
	}
	c := &Cluster{t: t, Servers: make([]*natslog.Embedded, n), ids: map[string]int{}, side: make([]int, n)}
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	t.Cleanup(c.shutdown) // after TempDir's cleanup is registered: runs first
	if err := shareSeeds(dirs); err != nil {
		t.Fatalf("netsplit: %v", err)
	}
	var err error
	for range 3 {
		if err = c.startAll(dirs); err == nil {
			break
		}
		c.shutdown()
	}
	if err != nil {
		t.Fatalf("netsplit: %v", err)
	}
	c.waitReady()
	return c
}

// startAll binds the proxies (on free ports, kept), reserves the route
// listeners' ports and starts the servers.
func (c *Cluster) startAll(dirs []string) error {
	n := len(dirs)
	c.proxies = make([]*proxy, n)
	routes := make([]string, n)
	listens := make([]string, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		listens[i] = l.Addr().String()
		l.Close()
		if c.proxies[i], err = c.newProxy(i, listens[i]); err != nil {
			return err
		}
		routes[i] = "nats-route://" + c.proxies[i].addr()
	}
	for i, d := range dirs {
		e, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: d, Listen: "127.0.0.1:0", ServerName: fmt.Sprintf("s%d", i), System: true,
			Cluster: &natslog.ClusterConfig{Name: "gavel-netsplit", Listen: listens[i], Routes: routes, Advertise: c.proxies[i].addr()}})
		if err != nil {
			return fmt.Errorf("start server %d: %w", i, err)
		}
		c.Servers[i] = e
		c.mu.Lock()
		c.ids[e.Server().ID()] = i
		c.mu.Unlock()
	}
	return nil
}

func (c *Cluster) shutdown() {
	for i, e := range c.Servers {
		if e != nil {
			e.Shutdown()
			c.Servers[i] = nil
		}
	}
	for _, p := range c.proxies {
		if p != nil {
			p.close()
		}
	}
}

func (c *Cluster) waitReady() {
	c.t.Helper()
	deadline := time.Now().Add(ReadyTimeout)
	for time.Now().Before(deadline) {
		for _, e := range c.Servers {
			if s := e.Server(); s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == len(c.Servers) {
				return
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	c.t.Fatalf("netsplit: JetStream not ready after %s", ReadyTimeout)
}

// Isolate cuts server i off from all the others: its routes close at once
// and every new one, either way, is refused until Heal.
func (c *Cluster) Isolate(i int) {
	c.mu.Lock()
	for k := range c.side {
		c.side[k] = 0
	}
	c.side[i] = 1
	c.mu.Unlock()
	for _, p := range c.proxies {
		p.dropCut()
	}
}

// Heal ends the cut: the servers' own route retries reconnect them.
func (c *Cluster) Heal() {
	c.mu.Lock()
	for k := range c.side {
		c.side[k] = 0
	}
	c.mu.Unlock()
}

// Dropped is how many route connections the cut has closed or refused.
func (c *Cluster) Dropped() int {
	n := 0
	for _, p := range c.proxies {
		p.mu.Lock()
		n += p.dropped
		p.mu.Unlock()
	}
	return n
}

// cut says whether a route between server a and server b is cut (an
// unknown dialer, not one of the cluster's servers, is never let through
// a cut).
func (c *Cluster) cut(dialer string, target int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.ids[dialer]
	if !ok {
		for _, s := range c.side {
			if s != 0 {
				return true
			}
		}
		return false
	}
	return c.side[a] != c.side[target]
}

// proxy forwards connections to one server's route listener.
type proxy struct {
	c      *Cluster
	target int
	to     string
	ln     net.Listener

	mu      sync.Mutex
	conns   map[*link]bool
	dropped int
	wg      sync.WaitGroup
}

// link is one proxied route: the dialer's id and both sockets.
type link struct {
	dialer   string
	in, out  net.Conn
	closeOne sync.Once
}

func (l *link) close() {
	l.closeOne.Do(func() {
		l.in.Close()
		l.out.Close()
	})
}

func (c *Cluster) newProxy(target int, to string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{c: c, target: target, to: to, ln: ln, conns: map[*link]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for l := range p.conns {
		l.close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(in)
		}()
	}
}

// maxConnectLine bounds the route's first line the proxy reads.
const maxConnectLine = 64 << 10

// serve reads the dialer's CONNECT, refuses it across a cut, else pipes
// the connection to the server both ways.
func (p *proxy) serve(in net.Conn) {
	in.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(in, 4096)
	line, err := readLine(br)
	in.SetReadDeadline(time.Time{})
	if err != nil {
		in.Close()
		return
	}
	dialer := connectName(line)
	if p.c.cut(dialer, p.target) {
		p.count()
		in.Close()
		return
	}
	out, err := net.Dial("tcp", p.to)
	if err != nil {
		in.Close()
		return
	}
	l := &link{dialer: dialer, in: in, out: out}
	p.mu.Lock()
	p.conns[l] = true
	p.mu.Unlock()
	// A cut made between the check above and the registration: drop it now.
	if p.c.cut(dialer, p.target) {
		p.count()
		p.forget(l)
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		out.Write(line)
		io.Copy(out, br)
		l.close()
		done <- struct{}{}
	}()
	go func() {
		io.Copy(in, out)
		l.close()
		done <- struct{}{}
	}()
	<-done
	<-done
	p.forget(l)
}

func (p *proxy) count() {
	p.mu.Lock()
	p.dropped++
	p.mu.Unlock()
}

func (p *proxy) forget(l *link) {
	l.close()
	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
}

// dropCut closes the proxied routes the current cut forbids.
func (p *proxy) dropCut() {
	p.mu.Lock()
	var drop []*link
	for l := range p.conns {
		if p.c.cut(l.dialer, p.target) {
			drop = append(drop, l)
		}
	}
	p.dropped += len(drop)
	p.mu.Unlock()
	for _, l := range drop {
		l.close()
	}
}

// readLine reads up to and including the first "\r\n".
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for len(line) < maxConnectLine {
		b, err := br.ReadSlice('\n')
		line = append(line, b...)
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
	return nil, errors.New("netsplit: the route's first line is too long")
}

// connectName is the "name" of a route's CONNECT line (the dialer's
// server id), or "" when the line is not a CONNECT.
func connectName(line []byte) string {
	rest, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("CONNECT "))
	if !ok {
		return ""
	}
	var v struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(rest, &v) != nil {
		return ""
	}
	return strings.TrimSpace(v.Name)
}

// shareSeeds creates the users' seeds in the first folder and copies them
// to the others, so every user's credentials work at every server.
func shareSeeds(dirs []string) error {
	seeds, err := natslog.LoadOrCreateSeeds(dirs[0])
	if err != nil {
		return err
	}
	for _, d := range dirs[1:] {
		for u := range seeds.Keys {
			b, err := os.ReadFile(seeds.File(u))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(d, filepath.Base(seeds.File(u))), b, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

package mapagent_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/engine/netmap/agent"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/handlers"
	"github.com/gavelhq/gavel/nodeagent/mapagent"
)

type node struct {
	base string
	key  ed25519.PrivateKey
	rec  engine.NodeRecord
}

func newNode(t *testing.T, root, name string, i int, serviceCert []byte) *node {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	base := filepath.Join(root, fmt.Sprintf("node%d", i))
	os.MkdirAll(base, 0o755)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(base, mapagent.KeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	cfg, _ := json.Marshal(mapagent.NodeConfig{LegalName: name, Addresses: []string{fmt.Sprintf("127.0.0.1:%d", 10000+i)}, PlatformVersion: 4, Serial: 1})
	os.WriteFile(filepath.Join(base, mapagent.ConfigFile), cfg, 0o644)
	if serviceCert != nil {
		os.WriteFile(filepath.Join(base, mapagent.ServiceCertFile), serviceCert, 0o644)
	}
	pub := key.Public().(ed25519.PublicKey)
	pder, _ := x509.MarshalPKIXPublicKey(pub)
	return &node{base: base, key: key, rec: engine.NodeRecord{NodeID: engine.NodeID(pub), Status: "Trusted", Role: "participant",
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}))}}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// Three agents follow a real service through one update that changes only
// an auto-acceptable field: one accepts automatically, one through gavel
// node accept (a stale hash refused locally first), one not at all. At the
// flag day the two acceptors exit 0 for a restart, the third exits 1 with
// Corda's reason; a restarted acceptor promotes the update file.
func TestAgentsThroughAnUpdate(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	svcDir := filepath.Join(root, "service")
	os.MkdirAll(svcDir, 0o755)
	id, err := replica.LoadOrCreateIdentity(svcDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*node
	var recs []engine.NodeRecord
	for i, n := range []string{"O=Alice,L=London,C=GB", "O=Bob,L=Paris,C=FR", "O=Carol,L=Rome,C=IT"} {
		nodes = append(nodes, newNode(t, root, n, i, id.CertPEM))
		recs = append(recs, nodes[i].rec)
	}
	var members []*govreq.Member
	var initial []gov.InitialMember
	for i := range 2 {
		certPEM, keyPEM, _ := govreq.Keygen("ES256", fmt.Sprintf("m%d", i))
		m, _ := govreq.LoadMember(certPEM, keyPEM)
		members = append(members, m)
		initial = append(initial, gov.InitialMember{CertPEM: certPEM})
	}
	seq := sequencer.DefaultConfig()
	seq.SignInterval = 5 * time.Millisecond
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := replica.Open(ctx, replica.Config{DataDir: svcDir, NATSListen: "127.0.0.1:0", Sequencer: seq, Logger: logger,
		Members: initial, Netmap: replica.NetmapConfig{Nodes: recs, Tick: 10 * time.Millisecond, MaxAge: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	srv := httptest.NewServer(handlers.NewHTTP(r, handlers.DefaultLimits(), logger))
	defer srv.Close()
	// A corrupt file and a copy in progress in one node's folder are skipped.
	extra := filepath.Join(nodes[0].base, mapagent.AdditionalDir)
	os.MkdirAll(extra, 0o755)
	os.WriteFile(filepath.Join(extra, "nodeInfo-corrupt"), []byte("junk"), 0o644)
	os.WriteFile(filepath.Join(extra, "nodeInfo-x.tmp"), []byte("junk"), 0o644)

	policies := []agent.Policy{{}, {Disabled: true}, {Disabled: true}}
	exits := make([]chan mapagent.Exit, 3)
	for i, n := range nodes {
		a, err := mapagent.Load(mapagent.Config{Base: n.base, URL: srv.URL, MaxPoll: 10 * time.Millisecond, Policy: policies[i], Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		exits[i] = make(chan mapagent.Exit, 1)
		go func() { exits[i] <- a.Run(ctx) }()
	}
	// Every agent caches all three NodeInfos.
	for _, n := range nodes {
		waitFor(t, "the NodeInfo cache", func() bool { return len(mapagent.CachedNodeInfos(n.base)) == 3 })
	}
	c := client.New(srv.URL)
	cur, _ := netmap.LoadCurrent(r.Store())
	deadline := time.Now().UTC().Add(2 * time.Second).Format(time.RFC3339Nano)
	body := `{"actions":[{"name":"set_network_parameters","args":{"description":"whitelist","update_deadline":"` + deadline + `",` +
		`"parameters":{"minimum_platform_version":1,"notaries":[],"max_message_size":10485760,"max_transaction_size":10485760,` +
		`"whitelisted_contract_implementations":{"com.example.Cash":["` + strings.Repeat("ab", 32) + `"]}}}}]}`
	p, _, err := c.Propose(ctx, members[0], []byte(body))
	for _, m := range members {
		if err == nil {
			p, _, err = c.Vote(ctx, m, p.ProposalID, "export function vote() { return true; }")
		}
	}
	if err != nil || p.State != gov.StateAccepted {
		t.Fatalf("update: %+v %v", p, err)
	}
	pend, _, _ := netmap.LoadPending(r.Store())
	for i, n := range nodes {
		waitFor(t, "the update recorded", func() bool { us, _ := mapagent.Updates(n.base); return len(us) == 1 })
		us, _ := mapagent.Updates(n.base)
		if us[0].Hash != pend.NewParametersHash || us[0].AutoAccepted != (i == 0) {
			t.Fatalf("node %d recorded %+v", i, us[0])
		}
	}
	err = mapagent.AcceptLocal(ctx, nodes[1].base, cur.Hash)
	if engine.AsError(err).Code != netmap.CodeOutdatedParametersHash {
		t.Fatalf("a stale hash accepted: %v", err)
	}
	if err := mapagent.AcceptLocal(ctx, nodes[1].base, pend.NewParametersHash); err != nil {
		t.Fatal(err)
	}
	acc, err := c.Acceptances(ctx, "")
	if err != nil || len(acc.Accepted) != 2 || !slices.Equal(acc.Pending, []string{nodes[2].rec.NodeID}) {
		t.Fatalf("acceptances %+v %v", acc, err)
	}
	for i, want := range []mapagent.Exit{{Code: 0}, {Code: 0}, {Code: 1, Message: agent.MsgNotAccepted}} {
		got := <-exits[i]
		if got.Code != want.Code || (want.Message != "" && got.Message != want.Message) {
			t.Fatalf("node %d exited %+v, want %+v", i, got, want)
		}
	}
	// The restart after accepting: the update file becomes network-parameters.
	a, err := mapagent.Load(mapagent.Config{Base: nodes[0].base, URL: srv.URL, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(nodes[0].base, agent.ParametersFile))
	mapKey, _ := replica.LoadMapSigner(svcDir)
	if _, h, err := netmap.VerifySignedParameters(b, mapKey.Public(), netmap.DefaultLimits()); err != nil || h != pend.NewParametersHash {
		t.Fatalf("network-parameters after restart: %s %v", h, err)
	}
	// The non-acceptor, restarted with its old file, is refused naming both hashes.
	a, _ = mapagent.Load(mapagent.Config{Base: nodes[2].base, URL: srv.URL, Logger: logger})
	err = a.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), cur.Hash) || !strings.Contains(err.Error(), pend.NewParametersHash) {
		t.Fatalf("a stale network-parameters file: %v", err)
	}
	// With the map away the node starts on its file, the map key taken from
	// the certificate bootstrap leaves; below the minimum platform version
	// it is refused.
	os.WriteFile(filepath.Join(nodes[0].base, mapagent.MapCertFile), r.MapCertificate(), 0o644)
	srv.Close()
	a, _ = mapagent.Load(mapagent.Config{Base: nodes[0].base, URL: srv.URL, Logger: logger})
	if err := a.Start(ctx); err != nil {
		t.Fatalf("start with the map away: %v", err)
	}
	cfg, _ := json.Marshal(mapagent.NodeConfig{LegalName: "O=Alice,L=London,C=GB", Addresses: []string{"127.0.0.1:1"}, PlatformVersion: 0})
	os.WriteFile(filepath.Join(nodes[0].base, mapagent.ConfigFile), cfg, 0o644)
	a, _ = mapagent.Load(mapagent.Config{Base: nodes[0].base, URL: srv.URL, Logger: logger})
	if err := a.Start(ctx); err == nil || !strings.Contains(err.Error(), "below the network's minimum_platform_version") {
		t.Fatalf("platform version 0: %v", err)
	}
}

// With NATS the agent follows gavel.feed.map: the map's max-age is an hour,
// so only the feed can make it see a new update within the test.
func TestAgentFollowsTheFeed(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	svcDir := filepath.Join(root, "service")
	os.MkdirAll(svcDir, 0o755)
	id, err := replica.LoadOrCreateIdentity(svcDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t, root, "O=Alice,L=London,C=GB", 0, id.CertPEM)
	certPEM, keyPEM, _ := govreq.Keygen("ES256", "m0")
	m, _ := govreq.LoadMember(certPEM, keyPEM)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := replica.Open(ctx, replica.Config{DataDir: svcDir, NATSListen: "127.0.0.1:0", Logger: logger,
		Members: []gov.InitialMember{{CertPEM: certPEM}}, Netmap: replica.NetmapConfig{Nodes: []engine.NodeRecord{n.rec}, Tick: 10 * time.Millisecond, MaxAge: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	srv := httptest.NewServer(handlers.NewHTTP(r, handlers.DefaultLimits(), logger))
	defer srv.Close()
	creds, err := natslog.ConnectOptions(r.ClientCredsFile(natslog.UserNode))
	if err != nil {
		t.Fatal(err)
	}
	a, err := mapagent.Load(mapagent.Config{Base: n.base, URL: srv.URL, NATSURL: r.NATSURL(), NATSOpts: []nats.Option{creds}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan mapagent.Exit, 1)
	go func() { done <- a.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the agent's NodeInfo", func() bool { return len(mapagent.CachedNodeInfos(n.base)) == 1 })
	c := client.New(srv.URL)
	body := `{"actions":[{"name":"set_network_parameters","args":{"description":"feed","update_deadline":"` +
		time.Now().UTC().Add(time.Hour).Format(time.RFC3339) + `","parameters":{"minimum_platform_version":1,"notaries":[],` +
		`"max_message_size":10485760,"max_transaction_size":10485760,"package_ownership":{"com.example":"key"}}}}]}`
	p, _, err := c.Propose(ctx, m, []byte(body))
	if err == nil {
		p, _, err = c.Vote(ctx, m, p.ProposalID, "export function vote() { return true; }")
	}
	if err != nil || p.State != gov.StateAccepted {
		t.Fatalf("update: %+v %v", p, err)
	}
	waitFor(t, "the update through the feed", func() bool {
		us, _ := mapagent.Updates(n.base)
		return len(us) == 1 && us[0].AutoAccepted
	})
}

// A node that passes the event horizon leaves the map; its agent, told by
// its own gavel.feed.nodes.<id>, publishes again at once (its heartbeat is
// a day away) and is back in the map.
func TestAgentReturnsWhenItsFeedSaysItLeft(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	svcDir := filepath.Join(root, "service")
	os.MkdirAll(svcDir, 0o755)
	id, err := replica.LoadOrCreateIdentity(svcDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	alice := newNode(t, root, "O=Alice,L=London,C=GB", 0, id.CertPEM)
	bob := newNode(t, root, "O=Bob,L=Paris,C=FR", 1, nil)
	params := netmap.DefaultParameters()
	params.EventHorizon = 2 * time.Second
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := replica.Open(ctx, replica.Config{DataDir: svcDir, NATSListen: "127.0.0.1:0", Logger: logger,
		Netmap: replica.NetmapConfig{Parameters: &params, Nodes: []engine.NodeRecord{alice.rec, bob.rec}, Tick: 10 * time.Millisecond, MaxAge: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	srv := httptest.NewServer(handlers.NewHTTP(r, handlers.DefaultLimits(), logger))
	defer srv.Close()
	creds, err := natslog.ConnectOptions(r.ClientCredsFile(natslog.UserNode))
	if err != nil {
		t.Fatal(err)
	}
	a, err := mapagent.Load(mapagent.Config{Base: alice.base, URL: srv.URL, NATSURL: r.NATSURL(), NATSOpts: []nats.Option{creds}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan mapagent.Exit, 1)
	go func() { done <- a.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	c := client.New(srv.URL)
	inMap := func(who *node) bool {
		m, err := c.NetworkMap(ctx, "")
		if err != nil {
			return false
		}
		v, err := netmap.VerifyMap(m.Signed, id.Cert)
		if err != nil {
			return false
		}
		for _, h := range v.Payload.NodeInfoHashes {
			b, _ := c.NodeInfo(ctx, h)
			if p, err := netmap.ParseNodeInfo(b, netmap.DefaultLimits()); err == nil && p.NodeID == who.rec.NodeID {
				return true
			}
		}
		return false
	}
	publishes := func() int {
		n := 0
		for s := uint64(1); s <= r.Store().Meta().Seqno; s++ {
			if rec, _, _ := r.Store().Leaf(s); rec.Kind == engine.KindNodeInfo {
				n++
			}
		}
		return n
	}
	waitFor(t, "alice in the map", func() bool { return inMap(alice) })
	started := time.Now()
	// Past alice's horizon, bob's publish is the entry whose time the map
	// is computed at: alice leaves, her feed says so, her agent publishes.
	waitFor(t, "alice's horizon to pass", func() bool { return time.Since(started) > params.EventHorizon })
	signed, err := netmap.SignNodeInfo(bob.key, netmap.NodeInfo{Addresses: []string{"127.0.0.1:10001"}, LegalIdentities: []string{"O=Bob,L=Paris,C=FR"}, PlatformVersion: 4, Serial: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishNodeInfo(ctx, signed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's agent publishing again", func() bool { return publishes() >= 3 })
	if !inMap(alice) || !inMap(bob) {
		t.Fatal("alice is not back in the map beside bob")
	}
}

package natstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// External is a NATS cluster gavel did not configure, as an operator
// would run one for gavel serve --nats: plain nats-server options, a user
// with every right (Creds), a user that may not write the ledger
// (Restricted), and a system account user (System), each an nkey seed
// file.
type External struct {
	URL                       string // every server's client URL, comma-separated
	Creds, Restricted, System string
	Servers                   []*server.Server
}

// StartExternal starts n servers (standalone when n is 1), syncing every
// write only if syncAlways, and waits until JetStream is ready.
func StartExternal(t testing.TB, n int, syncAlways bool) *External {
	t.Helper()
	dir := t.TempDir()
	x := &External{}
	var pubs [3]string
	for i, name := range []string{"gavel.nk", "restricted.nk", "system.nk"} {
		path := filepath.Join(dir, name)
		pubs[i] = writeUserSeed(t, path)
		switch i {
		case 0:
			x.Creds = path
		case 1:
			x.Restricted = path
		case 2:
			x.System = path
		}
	}
	var err error
	for range 3 { // a reserved route port can be taken before it is bound
		if err = x.start(t, n, syncAlways, pubs); err == nil {
			break
		}
		x.shutdown()
	}
	if err != nil {
		t.Fatalf("natstest: external cluster: %v", err)
	}
	t.Cleanup(x.shutdown)
	deadline := time.Now().Add(ReadyTimeout)
	for !x.ready() {
		if time.Now().After(deadline) {
			t.Fatalf("natstest: external cluster not ready after %s", ReadyTimeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return x
}

func writeUserSeed(t testing.TB, path string) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	if err := os.WriteFile(path, append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return pub
}

func (x *External) start(t testing.TB, n int, syncAlways bool, pubs [3]string) error {
	routes, err := reserveRouteURLs(n)
	if err != nil {
		return err
	}
	x.Servers = make([]*server.Server, n)
	var urls []string
	for i := range n {
		sys := server.NewAccount(server.DEFAULT_SYSTEM_ACCOUNT)
		opts := &server.Options{
			ServerName: fmt.Sprintf("ext%d", i), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: t.TempDir(), SyncAlways: syncAlways, NoSigs: true, NoLog: true,
			JetStreamMaxStore: 1 << 30, JetStreamMaxMemory: 64 << 20, MaxPayload: 8 << 20,
			Accounts: []*server.Account{sys}, SystemAccount: server.DEFAULT_SYSTEM_ACCOUNT,
			Nkeys: []*server.NkeyUser{
				{Nkey: pubs[0]},
				{Nkey: pubs[1], Permissions: &server.Permissions{Publish: &server.SubjectPermission{
					Allow: []string{">"}, Deny: []string{"gavel.ledger.>"}}}},
				{Nkey: pubs[2], Account: sys},
			},
		}
		if n > 1 {
			host, port, _ := strings.Cut(strings.TrimPrefix(routes[i], "nats-route://"), ":")
			var p int
			fmt.Sscan(port, &p)
			opts.Cluster = server.ClusterOpts{Name: "external", Host: host, Port: p, PoolSize: -1}
			for _, r := range routes {
				opts.Routes = append(opts.Routes, server.RoutesFromStr(r)...)
			}
		}
		s, err := server.NewServer(opts)
		if err != nil {
			return err
		}
		s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			s.Shutdown()
			return fmt.Errorf("server %d not ready", i)
		}
		x.Servers[i] = s
		urls = append(urls, s.ClientURL())
	}
	x.URL = strings.Join(urls, ",")
	return nil
}

func (x *External) ready() bool {
	leaderPeers := -1
	for _, s := range x.Servers {
		if !s.JetStreamIsCurrent() {
			return false
		}
		if s.JetStreamIsClustered() && s.JetStreamIsLeader() {
			leaderPeers = len(s.JetStreamClusterPeers())
		}
	}
	return len(x.Servers) == 1 || leaderPeers == len(x.Servers)
}

func (x *External) shutdown() {
	for _, s := range x.Servers {
		if s != nil {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	x.Servers = nil
}

package natslog_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/natslog/natstest"
)

// A Pending server's own sequencer and feed users may publish no entry,
// no feed and no stream change; a reload to Trusted gives the rights
// back, and admits another replica's users.
func TestPendingRightsAndReload(t *testing.T) {
	other, err := natslog.LoadOrCreateSeeds(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Pending: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	if _, err := e.ConnectSystem(); !errors.Is(err, natslog.ErrNoSystemUser) {
		t.Fatalf("a server without a system user: %v", err)
	}
	refused := func(u natslog.User, subject string) bool {
		t.Helper()
		nc, err := e.ConnectService(u)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.Publish(subject, []byte("x"))
		// The server answers a violation before the flush's PONG, and the
		// client records it as the connection's last error on reading it.
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		return errors.Is(nc.LastError(), nats.ErrPermissionViolation)
	}
	for _, c := range []struct {
		u       natslog.User
		subject string
	}{
		{natslog.UserSequencer, natslog.LedgerSubject("statement")},
		{natslog.UserSequencer, "$JS.API.STREAM.UPDATE." + natslog.LedgerStream},
		{natslog.UserFeeds, "gavel.feed.params"},
		{natslog.UserReplica, "$KV." + natslog.LeaseBucket + ".leader"},
		{natslog.UserReplica, "gavel.replica.forward.someone"},
	} {
		if !refused(c.u, c.subject) {
			t.Errorf("pending %s published %s", c.u, c.subject)
		}
	}
	admitted := func() bool {
		auth, err := natslog.ConnectOptions(other.File(natslog.UserMember))
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(e.ClientURL(), auth, nats.MaxReconnects(0))
		if err == nil {
			nc.Close()
		}
		return err == nil
	}
	if admitted() {
		t.Fatal("another replica's member user was admitted before the reload")
	}
	if err := e.Reload(map[natslog.User][]string{natslog.UserMember: {other.Keys[natslog.UserMember]}}, false); err != nil {
		t.Fatal(err)
	}
	if e.Pending() || refused(natslog.UserSequencer, natslog.LedgerSubject("statement")) || refused(natslog.UserFeeds, "gavel.feed.params") {
		t.Fatal("a trusted server's users are still refused")
	}
	if !admitted() {
		t.Fatal("another replica's member user is refused after the reload")
	}
	if err := e.Reload(map[natslog.User][]string{"stranger": {other.Keys[natslog.UserMember]}}, false); err == nil {
		t.Fatal("keys of an unknown user kind were taken")
	}
}

// The stream leader moves to the preferred server on a stepdown, and
// every server lists the same meta peers.
func TestStreamStepdownAndMetaPeers(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 3)
	c.EnsureStreams()
	nc := c.ConnectReplica(0)
	peers, err := natslog.StreamPeers(ctx, nc, natslog.LedgerStream)
	if err != nil || len(peers) != 3 {
		t.Fatalf("ledger peers %v, %v", peers, err)
	}
	target := peers[1]
	if err := natslog.StepdownStream(ctx, nc, natslog.LedgerStream, target); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if p, err := natslog.StreamPeers(ctx, nc, natslog.LedgerStream); err == nil && p[0] == target {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader never moved to %s", target)
		}
	}
	if err := natslog.EvacuateStreamPeer(ctx, nc, natslog.LedgerStream, "no-such-server"); err == nil {
		t.Fatal("evacuated a peer the stream does not have")
	}
	for i, e := range c.Servers {
		ps, leader := e.MetaPeers()
		if len(ps) != 3 || leader == "" || ps[0].Name != e.Name() || ps[0].PeerID != e.PeerID() {
			t.Fatalf("server %d lists meta peers %v, leader %q", i, ps, leader)
		}
	}
	// Three JetStream servers that sync every write pass the survey.
	sys, err := c.Servers[2].ConnectSystem()
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	if _, err := natslog.CheckExternal(ctx, sys, false); err != nil {
		t.Fatalf("three embedded servers: %v", err)
	}
}

// The survey of a real server: a lone embedded server syncs every write
// but is one JetStream server; one with lazy fsync is refused even when
// small clusters are allowed. Credentials that may not write the ledger
// are refused by what the server says of them.
func TestCheckExternal(t *testing.T) {
	ctx := testContext(t)
	e, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", System: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	// The system account does not open the server to anonymous clients.
	if nc, err := nats.Connect(e.ClientURL(), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a server with a system user admits anonymous clients")
	}
	sys, err := e.ConnectSystem()
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	if _, err := natslog.CheckExternal(ctx, sys, false); !errors.Is(err, natslog.ErrTooFewServers) {
		t.Fatalf("one server: %v", err)
	}
	if _, err := natslog.CheckExternal(ctx, sys, true); err != nil {
		t.Fatalf("one server, allowed: %v", err)
	}

	sysAcc := server.NewAccount(server.DEFAULT_SYSTEM_ACCOUNT)
	lazy, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
		Accounts: []*server.Account{sysAcc}, SystemAccount: server.DEFAULT_SYSTEM_ACCOUNT,
		Users: []*server.User{
			{Username: "sys", Password: "s", Account: sysAcc},
			{Username: "writer", Password: "w"},
			{Username: "reader", Password: "r", Permissions: &server.Permissions{Publish: &server.SubjectPermission{
				Allow: []string{"$SYS.REQ.USER.INFO", "$JS.API.>"}}}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	lazy.Start()
	defer lazy.Shutdown()
	if !lazy.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	connect := func(user, pass string) *nats.Conn {
		nc, err := nats.Connect(lazy.ClientURL(), nats.UserInfo(user, pass))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	if _, err := natslog.CheckExternal(ctx, connect("sys", "s"), true); !errors.Is(err, natslog.ErrNotSyncAlways) {
		t.Fatalf("lazy fsync: %v", err)
	}
	if err := natslog.CheckLedgerRights(ctx, connect("writer", "w")); err != nil {
		t.Fatalf("a user with every right: %v", err)
	}
	if err := natslog.CheckLedgerRights(ctx, connect("reader", "r")); !errors.Is(err, natslog.ErrNoLedgerRights) {
		t.Fatalf("a user who may not write the ledger: %v", err)
	}
}

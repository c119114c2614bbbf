package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/natslog/natstest"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/internal/syncbuf"
)

// gavel serve --nats refuses a cluster it cannot run on safely, and
// credentials that cannot write the ledger, each with a message saying
// why, before it writes anything: no key in the data folder, no stream in
// the cluster.
func TestServeExternalRefusals(t *testing.T) {
	lazy := natstest.StartExternal(t, 3, false)
	small := natstest.StartExternal(t, 1, true)
	for _, tc := range []struct {
		name string
		x    *natstest.External
		args []string
		want string
	}{
		{"a cluster that does not sync every write", lazy, []string{"--creds", lazy.Creds, "--system-creds", lazy.System},
			"a JetStream server does not sync every write before its ack (set sync_interval: always)"},
		{"one JetStream server", small, []string{"--creds", small.Creds, "--system-creds", small.System},
			"fewer than 3 JetStream servers"},
		{"credentials that may not write the ledger", small, []string{"--creds", small.Restricted, "--system-creds", small.System, "--allow-small-cluster"},
			"the credentials may not write gavel's ledger or manage its streams"},
		{"no system user to survey the servers", small, []string{"--creds", small.Creds, "--allow-small-cluster"},
			"cannot survey the NATS cluster's servers as the --creds user (give --system-creds, a system account user)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			code, _, errOut := run(append([]string{"serve", "--data", data, "--http", "127.0.0.1:0", "--nats", tc.x.URL}, tc.args...)...)
			if code != exitFailed || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %q", code, errOut, tc.want)
			}
			for _, f := range []string{replica.NodeCertFile, replica.ServiceCertFile, replica.Member0KeyFile, "state"} {
				if _, err := os.Stat(filepath.Join(data, f)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s written: %v", f, err)
				}
			}
			if names := streamNames(t, tc.x); len(names) != 0 {
				t.Errorf("streams created: %v", names)
			}
		})
	}
	if code, _, errOut := run("serve", "--nats", lazy.URL); code != exitUsage || !strings.Contains(errOut, "--nats needs --creds") {
		t.Fatalf("--nats without --creds: %d %q", code, errOut)
	}
	if code, _, errOut := run("serve", "--nats", lazy.URL, "--creds", lazy.Creds, "--cluster", "--code-version", "A"); code != exitUsage ||
		!strings.Contains(errOut, "--nats runs on a NATS cluster gavel did not start") {
		t.Fatalf("--nats with --cluster: %d %q", code, errOut)
	}
	if code, _, errOut := run("serve", "--allow-small-cluster"); code != exitUsage || !strings.Contains(errOut, "go with --nats") {
		t.Fatalf("--allow-small-cluster alone: %d %q", code, errOut)
	}
}

func streamNames(t *testing.T, x *natstest.External) []string {
	t.Helper()
	auth, err := natslog.ConnectOptions(x.Creds)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(x.URL, auth)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var out []string
	names := js.StreamNames(context.Background())
	for n := range names.Name() {
		out = append(out, n)
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		t.Fatal(err)
	}
	return out
}

// On a good cluster (three JetStream servers syncing every write) gavel
// serve --nats runs with the roles: it leads, writes genesis into R3
// streams on the operator's servers, takes a member's proposal and vote
// (a write) and answers it back (a read).
func TestServeExternal(t *testing.T) {
	x := natstest.StartExternal(t, 3, true)
	data := filepath.Join(t.TempDir(), "data")
	fs := newFlags("serve", io.Discard)
	var f serveFlags
	f.register(fs)
	if err := fs.Parse([]string{"--data", data, "--http", "127.0.0.1:0", "--nats", x.URL, "--creds", x.Creds, "--system-creds", x.System}); err != nil {
		t.Fatal(err)
	}
	if err := f.validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var log syncbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- serve(ctx, f, slog.New(slog.NewTextHandler(&log, nil))) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	var ep endpoints
	deadline := time.Now().Add(natstest.ReadyTimeout)
	for {
		b, err := os.ReadFile(filepath.Join(data, "endpoints.json"))
		if err == nil && json.Unmarshal(b, &ep) == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no endpoints.json\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ep.NATS != x.URL {
		t.Fatalf("endpoints name NATS %q, not the cluster's %q", ep.NATS, x.URL)
	}
	certPEM, _ := os.ReadFile(filepath.Join(data, replica.Member0CertFile))
	keyPEM, _ := os.ReadFile(filepath.Join(data, replica.Member0KeyFile))
	member, err := govreq.LoadMember(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(ep.HTTP)
	p, _, err := c.Propose(ctx, member, []byte(`{"actions":[{"name":"add_virtual_host_data","args":{"host_data":"`+replica.VirtualHostData("B")+`"}}]}`))
	if err == nil && p.State == "Open" {
		p, _, err = c.Vote(ctx, member, p.ProposalID, client.AcceptBallot)
	}
	if err != nil || p.State != "Accepted" {
		t.Fatalf("a proposal: %v %v\n%s", p, err, log.String())
	}
	got, err := c.Proposal(ctx, p.ProposalID)
	if err != nil || got.State != "Accepted" {
		t.Fatalf("the proposal read back: %v %v", got, err)
	}
	if names := streamNames(t, x); len(names) < 2 {
		t.Fatalf("streams on the cluster: %v", names)
	}
}

package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/engine/netmap/agent"
	"github.com/gavelhq/gavel/engine/replica"
)

// gavel bootstrap's contract: the folders, byte-identical signed
// parameters in every node folder, each node's additional-node-infos
// holding every other node, the epoch kept by an unchanged re-run and
// bumped by a new notary, bad flags refused by name, and a service
// started from D/service trusting the nodes.
func TestBootstrap(t *testing.T) {
	dir := t.TempDir()
	if code, out, errOut := run("bootstrap", "--dir", dir, "--nodes", "3", "--members", "2"); code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	for _, f := range []string{"service/service_cert.pem", "service/network-genesis.json", "members/member0_cert.pem",
		"members/member1_privk.pem", "nodes/node2/node_privk.pem", "nodes/node0/network-parameters"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	params := func(node string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "nodes", node, agent.ParametersFile))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	p0 := params("node0")
	for _, n := range []string{"node1", "node2"} {
		if !bytes.Equal(params(n), p0) {
			t.Fatalf("%s's network-parameters differ from node0's", n)
		}
		infos, _ := os.ReadDir(filepath.Join(dir, "nodes", n, additionalInfosDir))
		if len(infos) != 2 || !strings.HasPrefix(infos[0].Name(), nodeInfoPrefix) {
			t.Fatalf("%s's additional-node-infos: %v", n, infos)
		}
	}
	mapKey, err := replica.LoadMapSigner(filepath.Join(dir, "service"))
	if err != nil {
		t.Fatal(err)
	}
	epochOf := func() int64 {
		t.Helper()
		p, _, err := netmap.VerifySignedParameters(params("node0"), mapKey.Public(), netmap.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		return p.Epoch
	}
	if epochOf() != 1 {
		t.Fatalf("epoch %d", epochOf())
	}
	run("bootstrap", "--dir", dir, "--nodes", "3", "--members", "2")
	if !bytes.Equal(params("node1"), p0) {
		t.Fatal("an unchanged re-run changed the parameters")
	}
	if code, _, errOut := run("bootstrap", "--dir", dir, "--nodes", "3", "--members", "2", "--notary", "O=Notary,L=Zurich,C=CH"); code != 0 {
		t.Fatal(errOut)
	}
	if epochOf() != 2 || !bytes.Equal(params("node3"), params("node0")) {
		t.Fatalf("adding a notary: epoch %d", epochOf())
	}
	// Adding a node (NetworkBootstrapperTest "add node"): the parameters
	// and the existing nodes' keys stay, every folder lists the newcomer.
	key0, _ := os.ReadFile(filepath.Join(dir, "nodes", "node0", nodeKeyFile))
	withNotary := params("node0")
	if code, _, errOut := run("bootstrap", "--dir", dir, "--nodes", "4", "--members", "2", "--notary", "O=Notary,L=Zurich,C=CH"); code != 0 {
		t.Fatal(errOut)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "nodes", "node0", nodeKeyFile)); epochOf() != 2 || !bytes.Equal(again, key0) ||
		!bytes.Equal(params("node0"), withNotary) || !bytes.Equal(params("node4"), withNotary) {
		t.Fatalf("adding a node: epoch %d, node0's key kept %v, parameters kept %v", epochOf(), bytes.Equal(again, key0), bytes.Equal(params("node0"), withNotary))
	}
	if infos, _ := os.ReadDir(filepath.Join(dir, "nodes", "node0", additionalInfosDir)); len(infos) != 4 {
		t.Fatalf("node0's additional-node-infos after adding a node: %d files, want 4", len(infos))
	}
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--legal-name", "O=A,L=B,C=GB", "--legal-name", "O=A,L=B,C=GB"}, "--legal-name"},
		{[]string{"--notary", "O=Node0,L=London,C=GB"}, "--notary"},
		{[]string{"--legal-name", "not a name"}, "--legal-name"},
		{[]string{"--nodes", "0"}, "--nodes"},
		{[]string{"--members", "0"}, "--members"},
		{[]string{"--minimum-platform-version", "5"}, "--minimum-platform-version"},
		{[]string{"--minimum-platform-version", "0"}, "--minimum-platform-version"},
	} {
		code, _, errOut := run(append([]string{"bootstrap", "--dir", t.TempDir()}, tc.args...)...)
		if code != exitFailed || !strings.Contains(errOut, tc.flag) {
			t.Fatalf("%v: exit %d %q, want a refusal naming %s", tc.args, code, errOut, tc.flag)
		}
	}

	// The service from D/service trusts the nodes and holds the parameters
	// the nodes were given.
	svc := filepath.Join(dir, "service")
	members, nm, err := loadNetworkGenesis(svc)
	if err != nil {
		t.Fatal(err)
	}
	r, err := replica.Open(context.Background(), replica.Config{DataDir: svc, NATSListen: "127.0.0.1:0", Members: members,
		Netmap: nm, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cur, err := netmap.LoadCurrent(r.Store())
	if err != nil {
		t.Fatal(err)
	}
	if _, h, _ := netmap.VerifySignedParameters(params("node0"), mapKey.Public(), netmap.DefaultLimits()); h != cur.Hash {
		t.Fatalf("service parameters %s, nodes' %s", cur.Hash, h)
	}
	info, _ := os.ReadDir(filepath.Join(dir, "nodes", "node1", additionalInfosDir))
	raw, _ := os.ReadFile(filepath.Join(dir, "nodes", "node1", additionalInfosDir, info[0].Name()))
	if _, err := r.PublishNodeInfo(context.Background(), raw); err != nil {
		t.Fatalf("a bootstrapped node publishing: %v", err)
	}
}

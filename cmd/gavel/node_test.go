package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine/attest/devsnp"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/handlers"
	"github.com/gavelhq/gavel/projections"
)

// accept proposes actions as member0 of svc and votes for them.
func (s *service) accept(t *testing.T, actions string) {
	t.Helper()
	dir := t.TempDir()
	cert, key := filepath.Join(s.dataDir, replica.Member0CertFile), filepath.Join(s.dataDir, replica.Member0KeyFile)
	out := mustRun(t, "member", "propose", "--url", s.url, "--cert", cert, "--key", key, "--json",
		writeFile(t, dir, "p.json", []byte(`{"actions":[`+actions+`]}`)))
	var p client.Proposal
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("propose: %v: %s", err, out)
	}
	if p.State == "Open" {
		out = mustRun(t, "member", "vote", "--url", s.url, "--cert", cert, "--key", key, "--json", "--proposal", p.ProposalID)
		json.Unmarshal([]byte(out), &p)
	}
	if p.State != "Accepted" {
		t.Fatalf("proposal %s: %s", actions, out)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestNodeCommands runs a node's life with the CLI: keygen, join
// (Pending), trusted by members, join --wait (Trusted, with the endorsed
// certificate), listed, retired, deleted; then the stopped replica's node
// read models rebuilt from its log equal what the live one answered.
func TestNodeCommands(t *testing.T) {
	svc := startService(t)
	dir := t.TempDir()
	keys := filepath.Join(dir, "node")
	id := strings.TrimSpace(mustRun(t, "node", "keygen", "--out", keys))
	if len(id) != 64 {
		t.Fatalf("node id %q", id)
	}
	if code, _, _ := run("node", "keygen", "--out", keys); code != exitFailed {
		t.Fatal("keygen overwrote a key")
	}
	hd := sha256Hex("code A")
	cfg := writeFile(t, dir, "node.json", []byte(`{"role":"participant","address":"node1.example:8443","code_version":"A",
		"attestation":{"format":"virtual","host_data":"`+hd+`","measurement":"aabbcc"},"node_data":{"zone":"eu"}}`))
	if code, _, errOut := run("node", "join", "--url", svc.url, "--key-dir", keys, "--config", cfg); code != exitFailed || !strings.Contains(errOut, "InvalidQuote") {
		t.Fatalf("untrusted join: exit %d %s", code, errOut)
	}
	svc.accept(t, `{"name":"add_virtual_measurement","args":{"measurement":"aabbcc"}},{"name":"add_virtual_host_data","args":{"host_data":"`+hd+`"}}`)
	if jp, err := client.New(svc.url).JoinPolicies(context.Background()); err != nil || len(jp.Virtual.HostData) != 1 || jp.Virtual.HostData[0] != hd || len(jp.Virtual.Measurements) != 1 {
		t.Fatalf("join policies %+v %v", jp, err)
	}
	var res struct {
		NodeID          string `json:"node_id"`
		Status          string `json:"status"`
		NodeCertificate string `json:"node_certificate"`
	}
	json.Unmarshal([]byte(mustRun(t, "node", "join", "--url", svc.url, "--key-dir", keys, "--config", cfg)), &res)
	if res.NodeID != id || res.Status != "Pending" {
		t.Fatalf("join %+v", res)
	}
	svc.accept(t, `{"name":"transition_node_to_trusted","args":{"node_id":"`+id+`","valid_from":"220101120000Z"}}`)
	json.Unmarshal([]byte(mustRun(t, "node", "join", "--url", svc.url, "--key-dir", keys, "--config", cfg, "--wait")), &res)
	if res.Status != "Trusted" || !strings.Contains(res.NodeCertificate, "BEGIN CERTIFICATE") {
		t.Fatalf("join --wait %+v", res)
	}
	var v client.NodeView
	json.Unmarshal([]byte(mustRun(t, "node", "status", "--url", svc.url, "--id", id)), &v)
	var nd bytes.Buffer
	json.Compact(&nd, v.NodeData)
	if v.Status != "Trusted" || v.Address != "node1.example:8443" || v.HostData != hd || nd.String() != `{"zone":"eu"}` {
		t.Fatalf("status %+v", v)
	}
	if out := mustRun(t, "nodes", "--url", svc.url); !strings.Contains(out, id[:16]) || !strings.Contains(out, svc.r.Node().ID[:16]) {
		t.Fatalf("nodes table:\n%s", out)
	}
	svc.accept(t, `{"name":"remove_node","args":{"node_id":"`+id+`"}}`)
	svc.settled(t)
	var removable struct{ Nodes []client.NodeView }
	json.Unmarshal([]byte(mustRun(t, "nodes", "--url", svc.url, "--removable", "--json")), &removable)
	if len(removable.Nodes) != 1 || removable.Nodes[0].NodeID != id || !removable.Nodes[0].RetiredCommitted {
		t.Fatalf("removable %+v", removable)
	}
	ver, err := client.New(svc.url).Version(context.Background())
	if err != nil || !ver.Unsafe || !ver.Virtual || ver.GojaVersion == "" {
		t.Fatalf("version %+v %v", ver, err)
	}
	live, err := svc.r.NodesSnapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	svc.r.Close()
	var rebuilt projections.NodesSnapshot
	var report struct {
		Live      string `json:"live_model_sha256"`
		EqualLive *bool  `json:"rebuilt_equals_live"`
	}
	out := mustRun(t, "projections", "rebuild", "--data", svc.dataDir)
	if err := json.Unmarshal([]byte(out), &rebuilt); err != nil {
		t.Fatal(err)
	}
	// The read model the replica kept is compared with the log's fold.
	if err := json.Unmarshal([]byte(out), &report); err != nil || report.EqualLive == nil || !*report.EqualLive || report.Live != live.ModelSHA256 {
		t.Fatalf("rebuild report %+v (live model %s)", report, live.ModelSHA256)
	}
	lj, _ := json.Marshal(live)
	rj, _ := json.Marshal(rebuilt)
	if string(lj) != string(rj) {
		t.Fatalf("rebuilt differs from live\nlive    %s\nrebuilt %s", lj, rj)
	}
	if len(rebuilt.Removable) != 1 || rebuilt.Removable[0].NodeID != id || len(rebuilt.TrustedHostData) != 1 {
		t.Fatalf("rebuilt %+v", rebuilt)
	}
	if sum := replaySummary(t, mustRun(t, "audit", "replay", "--data", svc.dataDir)); sum.Nodes != 1 {
		t.Fatalf("audit re-derived %d node entries", sum.Nodes)
	}
}

// TestNodeJoinDevSNP joins with a real SEV-SNP report signed by a
// development chain, on a service that trusts its root: the real SNP
// verification path, then trusted host data.
func TestNodeJoinDevSNP(t *testing.T) {
	dir := t.TempDir()
	signerDir := filepath.Join(dir, "snp")
	mustRun(t, "dev", "snp-signer", "--out", signerDir)
	root, err := os.ReadFile(filepath.Join(signerDir, "ark.pem"))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	seq := sequencer.DefaultConfig()
	seq.SignInterval = 5 * time.Millisecond
	dataDir := t.TempDir()
	r, err := replica.Open(context.Background(), replica.Config{DataDir: dataDir, NATSListen: "127.0.0.1:0", Sequencer: seq, Logger: logger, DevSNPRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	srv := httptest.NewServer(handlers.NewHTTP(r, handlers.DefaultLimits(), logger))
	t.Cleanup(srv.Close)
	svc := &service{r: r, dataDir: dataDir, url: srv.URL}

	keys := filepath.Join(dir, "node")
	mustRun(t, "node", "keygen", "--out", keys)
	hd, m := sha256Hex("code B"), strings.Repeat("ab", 48)
	cfg := writeFile(t, dir, "node.json", []byte(`{"role":"service","address":"10.9.9.9:443","code_version":"B",
		"attestation":{"format":"sev-snp","dev_signer":"snp","host_data":"`+hd+`","measurement":"`+m+`"}}`))
	// The measurement and TCB are governed, checked before the host data.
	if code, _, errOut := run("node", "join", "--url", svc.url, "--key-dir", keys, "--config", cfg); code != exitFailed || !strings.Contains(errOut, "measurement") {
		t.Fatalf("untrusted measurement: exit %d %s", code, errOut)
	}
	high := devsnp.TCBVersion
	high.SNP++
	tcbHigh, _ := json.Marshal(high)
	svc.accept(t, `{"name":"add_snp_measurement","args":{"measurement":"`+m+`"}},{"name":"set_snp_minimum_tcb_version","args":{"cpuid":"`+devsnp.CPUID+`","tcb_version":`+string(tcbHigh)+`}}`)
	if code, _, errOut := run("node", "join", "--url", svc.url, "--key-dir", keys, "--config", cfg); code != exitFailed || !strings.Contains(errOut, "TCB below the minimum") {
		t.Fatalf("TCB below the minimum: exit %d %s", code, errOut)
	}
	tcb, _ := json.Marshal(devsnp.TCBVersion)
	svc.accept(t, `{"name":"add_snp_measurement","args":{"measurement":"`+m+`"}},{"name":"set_snp_minimum_tcb_version","args":{"cpuid":"`+devsnp.CPUID+`","tcb_version":`+string(tcb)+`}},{"name":"add_snp_host_data","args":{"host_data":"`+hd+`"}}`)
	var res struct{ Status string }
	json.Unmarshal([]byte(mustRun(t, "node", "join", "--url", svc.url, "--key-dir", keys, "--config", cfg)), &res)
	if res.Status != "Pending" {
		t.Fatalf("join %+v", res)
	}
	ver, err := client.New(svc.url).Version(context.Background())
	if err != nil || !ver.DevSNPRoot || !ver.Unsafe {
		t.Fatalf("version %+v %v", ver, err)
	}
	svc.settled(t)
	r.Close()
	if sum := replaySummary(t, mustRun(t, "audit", "replay", "--data", dataDir)); sum.Nodes != 1 {
		t.Fatalf("audit re-derived %d node entries", sum.Nodes)
	}
}

func TestDemoCodeUpgrade(t *testing.T) {
	out := mustRun(t, "demo", "code-upgrade", "--data", t.TempDir())
	for _, want := range []string{"a4 (code A) refused", "SVN too low: 1", "c3 (code C) refused", "retired and deleted", "receipt", "Summary"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the demo does not say %q:\n%s", want, out)
		}
	}
}

package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/audit"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/engine/state"
	"github.com/gavelhq/gavel/handlers"
)

// service is a replica with its HTTP handlers, as `gavel serve` runs it.
type service struct {
	r       *replica.Replica
	dataDir string
	url     string
	cert    string // service_cert.pem
}

func startService(t *testing.T) *service {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	seq := sequencer.DefaultConfig()
	seq.SignInterval = 5 * time.Millisecond
	dataDir := t.TempDir()
	r, err := replica.Open(context.Background(), replica.Config{DataDir: dataDir, NATSListen: "127.0.0.1:0", Sequencer: seq, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	srv := httptest.NewServer(handlers.NewHTTP(r, handlers.DefaultLimits(), logger))
	t.Cleanup(srv.Close)
	return &service{r: r, dataDir: dataDir, url: srv.URL, cert: filepath.Join(dataDir, replica.ServiceCertFile)}
}

// settled waits until every entry is covered by a signature entry, after
// which the ledger stays still until the next request.
func (s *service) settled(t *testing.T) state.Meta {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := s.r.Store().Meta()
		if m.LastSignature == m.Seqno {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no signature covers the ledger: %+v", m)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mustRun runs a command that must exit 0 and returns its stdout.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := run(args...)
	if code != exitOK {
		t.Fatalf("gavel %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// TestRoundTrip drives a live replica with the CLI only: make an issuer,
// sign, register, fetch the receipt, verify it, and replay the ledger.
func TestRoundTrip(t *testing.T) {
	svc := startService(t)
	dir := t.TempDir()
	issDir := filepath.Join(dir, "issuer")

	did := strings.TrimSpace(mustRun(t, "statement", "issuer", "--out", issDir))
	if !strings.HasPrefix(did, "did:x509:") {
		t.Fatalf("issuer printed %q", did)
	}
	if b, err := os.ReadFile(filepath.Join(issDir, "did.txt")); err != nil || strings.TrimSpace(string(b)) != did {
		t.Fatalf("did.txt: %q %v", b, err)
	}
	key, chain := filepath.Join(issDir, "key.pem"), filepath.Join(issDir, "chain.pem")
	payload := writeFile(t, dir, "payload.txt", []byte("released build 1.2.3\n"))
	sign := func(subject string) string {
		st := mustRun(t, "statement", "sign", "--key", key, "--chain", chain, "--issuer", did,
			"--subject", subject, "--content-type", "text/plain", payload)
		parsed, err := cose.ParseStatement([]byte(st))
		if err != nil {
			t.Fatal(err)
		}
		if parsed.Issuer != did || parsed.Subject != subject {
			t.Fatalf("signed statement says issuer %q subject %q", parsed.Issuer, parsed.Subject)
		}
		return writeFile(t, dir, strings.ReplaceAll(subject, "/", "_")+".cose", []byte(st))
	}
	stFile, otherFile := sign("release/1.2.3"), sign("release/other")

	var reg struct {
		TxID string `json:"txid"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "statement", "register", "--url", svc.url, "--json", stFile)), &reg); err != nil {
		t.Fatal(err)
	}
	tx, err := engine.ParseTxID(reg.TxID)
	if err != nil {
		t.Fatal(err)
	}
	rcpt := writeFile(t, dir, "receipt.cose", []byte(mustRun(t, "receipt", "--url", svc.url, "--txid", reg.TxID)))

	var ver struct {
		Verified  bool   `json:"verified"`
		EntryTxID string `json:"entry_txid"`
		TxID      string `json:"signature_txid"`
		Root      string `json:"root"`
	}
	out := mustRun(t, "audit", "verify-receipt", "--service-cert", svc.cert, rcpt, "--statement", stFile)
	if err := json.Unmarshal([]byte(out), &ver); err != nil || !ver.Verified || len(ver.Root) != 64 || ver.EntryTxID != tx.String() {
		t.Fatalf("verify-receipt printed %s", out)
	}
	if sig, err := engine.ParseTxID(ver.TxID); err != nil || sig.Seqno <= tx.Seqno {
		t.Fatalf("receipt signed at %s for %s", ver.TxID, tx)
	}
	mustRun(t, "audit", "verify-receipt", "--service-cert", svc.cert, rcpt)

	// The transparent statement the service serves verifies with its cert.
	resp, err := http.Get(svc.url + "/entries/" + reg.TxID + "/statement")
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("transparent statement: %d %s", resp.StatusCode, ts)
	}
	mustRun(t, "audit", "verify-statement", "--service-cert", svc.cert, writeFile(t, dir, "transparent.cose", ts))

	otherDID := strings.TrimSpace(mustRun(t, "statement", "issuer", "--out", filepath.Join(dir, "other")))
	otherKey := filepath.Join(dir, "other", "key.pem")
	for _, tc := range []struct {
		name string
		args []string
		why  string
	}{
		{"receipt for another statement", []string{"audit", "verify-receipt", "--service-cert", svc.cert, rcpt, "--statement", otherFile}, "ClaimsDigestMismatch"},
		{"receipt against another service", []string{"audit", "verify-receipt", "--service-cert", writeServiceCert(t, dir), rcpt}, "not a key of this service"},
		{"transparent statement against another service", []string{"audit", "verify-statement", "--service-cert", writeServiceCert(t, dir), filepath.Join(dir, "transparent.cose")}, "UnknownServiceKey"},
		{"register a receipt", []string{"statement", "register", "--url", svc.url, rcpt}, "registration refused"},
		{"register text", []string{"statement", "register", "--url", svc.url, payload}, "InvalidStatement"},
		{"receipt of an unknown txid", []string{"receipt", "--url", svc.url, "--txid", "1.999999", "--wait", "0s"}, "TransactionNotFound"},
		{"receipt of a malformed txid", []string{"receipt", "--url", svc.url, "--txid", "one.two"}, "InvalidTransactionId"},
		{"sign with a key that is not PEM", []string{"statement", "sign", "--key", payload, "--chain", chain, "--issuer", did, "--subject", "s", payload}, "no PEM private key"},
		{"sign with a chain that is not PEM", []string{"statement", "sign", "--key", key, "--chain", payload, "--issuer", did, "--subject", "s", payload}, "no PEM certificate"},
		{"sign with another issuer's key", []string{"statement", "sign", "--key", otherKey, "--chain", chain, "--issuer", did, "--subject", "s", payload}, "sign:"},
		// sign refuses what registration would (InvalidIssuer, tested in handlers).
		{"sign with a chain that is not the issuer's", []string{"statement", "sign", "--key", key, "--chain", chain, "--issuer", otherDID, "--subject", "s", payload}, "does not satisfy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(tc.args...)
			t.Logf("stderr: %s", strings.TrimSpace(errOut))
			if code != exitFailed || !strings.Contains(errOut, tc.why) {
				t.Fatalf("exit %d, stdout %q, stderr %q (want 1 and %q)", code, out, errOut, tc.why)
			}
		})
	}

	// Replay over NATS with the client credentials: the summary is the
	// replica's own position and root.
	meta := svc.settled(t)
	want := audit.Summary{Entries: meta.Seqno, LastTxID: engine.TxID{View: meta.View, Seqno: meta.Seqno}.String()}
	root := svc.r.Store().Tree().Root()
	want.Root = hex.EncodeToString(root[:])
	got := replaySummary(t, mustRun(t, "audit", "replay", "--nats", svc.r.NATSURL(), "--creds", svc.r.ClientCredsFile(natslog.UserAuditor)))
	if got.Entries != want.Entries || got.LastTxID != want.LastTxID || got.Root != want.Root ||
		got.Statements != 1 || got.Signatures == 0 || got.Unsigned != 0 || got.LastSignedTxID != want.LastTxID {
		t.Fatalf("replay over NATS: %+v, want %+v", got, want)
	}
	// Given the service certificate, genesis must record it.
	mustRun(t, "audit", "replay", "--nats", svc.r.NATSURL(), "--creds", svc.r.ClientCredsFile(natslog.UserAuditor),
		"--service-cert", filepath.Join(svc.dataDir, replica.ServiceCertFile))
	other := t.TempDir()
	if _, err := replica.LoadOrCreateIdentity(other, time.Now()); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run("audit", "replay", "--nats", svc.r.NATSURL(), "--creds", svc.r.ClientCredsFile(natslog.UserAuditor),
		"--service-cert", filepath.Join(other, replica.ServiceCertFile)); code != exitFailed || !strings.Contains(errOut, "another service certificate") {
		t.Fatalf("replay against another service certificate: exit %d, %q", code, errOut)
	}
	if code, _, errOut := run("audit", "replay", "--nats", svc.r.NATSURL(), "--creds", payload); code != exitFailed || errOut == "" {
		t.Fatalf("replay with bad credentials: exit %d, %q", code, errOut)
	}
	// A member may submit but not read the ledger: refused at once, saying why.
	if code, _, errOut := run("audit", "replay", "--nats", svc.r.NATSURL(), "--creds", svc.r.ClientCredsFile(natslog.UserMember)); code != exitFailed ||
		!strings.Contains(errOut, "Permissions Violation") || !strings.Contains(errOut, "auditor.nk") {
		t.Fatalf("replay with a member's credentials: exit %d, %q", code, errOut)
	}

	// Replay of the stopped replica's folder gives the same summary.
	svc.r.Close()
	if again := replaySummary(t, mustRun(t, "audit", "replay", "--data", svc.dataDir)); !reflect.DeepEqual(again, got) {
		t.Fatalf("replay of the data folder %+v, over NATS %+v", again, got)
	}

	// A foreign message appended behind the service's back is a void
	// entry: listed, not applied, and the rest still verifies.
	appendToLedger(t, svc.dataDir, "gavel.ledger.statement", []byte("forged entry"))
	code, out, errOut := run("audit", "replay", "--data", svc.dataDir)
	var sum audit.Summary
	if code != exitOK || json.Unmarshal([]byte(out), &sum) != nil {
		t.Fatalf("replay of a ledger with a foreign message: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	void := meta.Seqno + 1
	if len(sum.VoidEntries) != 1 || sum.VoidEntries[0].Seqno != void || sum.Entries != void || sum.LastTxID != want.LastTxID ||
		!strings.Contains(errOut, "void entry at seqno "+strconv.FormatUint(void, 10)) {
		t.Fatalf("replay %+v (stderr %q), want one void entry at %d", sum, errOut, void)
	}
}

// TestReplayEmptyOrMissingLedger checks the replay refusals that need no
// service.
func TestReplayEmptyOrMissingLedger(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := run("audit", "replay", "--data", dir); code != exitFailed || !strings.Contains(errOut, "no ledger") {
		t.Fatalf("folder without a ledger: exit %d, %q", code, errOut)
	}
	// A folder whose lock is held is refused, naming the holder; a stale
	// endpoints.json (a killed replica's) is not a claim.
	running := t.TempDir()
	writeFile(t, running, "endpoints.json", []byte("{}"))
	if err := os.MkdirAll(filepath.Join(running, "nats"), 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := replica.LockDir(running, "gavel serve", false)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s is in use by another gavel serve (pid %d)", running, os.Getpid())
	if code, _, errOut := run("audit", "replay", "--data", running); code != exitFailed || !strings.Contains(errOut, want) {
		t.Fatalf("folder of a running replica: exit %d, %q", code, errOut)
	}
	lock.Release()
	if code, _, errOut := run("audit", "replay", "--data", running); code != exitFailed || strings.Contains(errOut, "in use") {
		t.Fatalf("folder with a stale endpoints.json: exit %d, %q", code, errOut)
	}
	// A ledger stream with no entry is not a verified ledger.
	empty := t.TempDir()
	appendToLedger(t, empty, "", nil)
	if code, _, errOut := run("audit", "replay", "--data", empty); code != exitFailed || !strings.Contains(errOut, "empty") {
		t.Fatalf("empty ledger: exit %d, %q", code, errOut)
	}
	// Whatever stops it, a replay's report says it did not verify.
	for _, dir := range []string{empty, t.TempDir()} {
		code, out, _ := run("audit", "replay", "--data", dir)
		var report struct {
			Verified *bool  `json:"verified"`
			Reason   string `json:"reason"`
		}
		if code != exitFailed || json.Unmarshal([]byte(out), &report) != nil || report.Verified == nil || *report.Verified || report.Reason == "" {
			t.Fatalf("replay of %s: exit %d, stdout %q: want \"verified\": false with a reason", dir, code, out)
		}
	}
}

// appendToLedger opens a stopped replica's NATS store as the replica user
// and publishes data on subject (nothing when subject is ""), creating the
// streams if needed.
func appendToLedger(t *testing.T, dataDir, subject string, data []byte) {
	t.Helper()
	emb, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: filepath.Join(dataDir, "nats"), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	nc, err := emb.ConnectReplica()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := natslog.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	if subject == "" {
		return
	}
	if _, err := js.Publish(ctx, subject, data); err != nil {
		t.Fatal(err)
	}
}

func replaySummary(t *testing.T, out string) audit.Summary {
	t.Helper()
	var s struct {
		Verified *bool `json:"verified"`
		audit.Summary
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Verified == nil || !*s.Verified {
		t.Fatalf("a verified replay must say \"verified\": true (%v): %s", err, out)
	}
	return s.Summary
}

package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/receipt"
)

// TestKillDuringRegistrations kills gavel (SIGKILL) in the middle of a
// stream of registrations. After a restart every acknowledged txid has a
// receipt that verifies for the statement that was sent, and an audit
// replay of the log reaches the root that a state rebuilt from nothing has.
func TestKillDuringRegistrations(t *testing.T) {
	data := t.TempDir()
	srv := startServer(t, data, "--sign-interval", "20ms")
	reg := newRegistrar(t)
	stop := reg.start(t, srv.HTTP, "kill", 8)
	// Kill once a good number are acknowledged, while requests are in flight.
	deadline := time.Now().Add(30 * time.Second)
	for len(reg.acknowledged()) < 300 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	srv.kill()
	stop()
	acks := reg.acknowledged()
	if len(acks) < 50 {
		t.Fatalf("only %d registrations acknowledged before the kill", len(acks))
	}
	t.Logf("%d acknowledged of %d sent before SIGKILL", len(acks), reg.sent.Load())

	srv = startServer(t, data, "--sign-interval", "20ms")
	certPEM, err := os.ReadFile(filepath.Join(data, "service_cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := receipt.KeySetFromPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range acks {
		if seen[a.txid] {
			t.Fatalf("txid %s acknowledged twice", a.txid)
		}
		seen[a.txid] = true
		ts := getCOSE(t, srv.HTTP+"/entries/"+a.txid+"/statement")
		res, err := receipt.VerifyTransparent(ts, keys, time.Now())
		if err != nil {
			t.Fatalf("%s: %v", a.txid, err)
		}
		want, _ := cose.ClaimsDigest(a.st)
		if res.ClaimsDigest != want {
			t.Fatalf("%s holds another statement", a.txid)
		}
	}
	srv.stop()
	if _, err := os.Stat(filepath.Join(data, "endpoints.json")); !os.IsNotExist(err) {
		t.Fatalf("endpoints.json survives a clean shutdown: %v", err)
	}

	out, errOut, code := runGavel(t, "audit", "replay", "--data", data)
	if code != 0 {
		t.Fatalf("audit replay exit %d: %s %s", code, out, errOut)
	}
	var sum struct {
		Entries  uint64 `json:"entries"`
		LastTxID string `json:"last_txid"`
		Root     string `json:"root"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.Root == "" {
		t.Fatalf("replay summary %q: %v", out, err)
	}
	if sum.Entries < uint64(len(acks)) {
		t.Fatalf("replay saw %d entries for %d acknowledged registrations", sum.Entries, len(acks))
	}

	// Rebuild the state from nothing: the same last txid, and every receipt
	// still verifies (they are recomputed from the rebuilt tree).
	if err := os.RemoveAll(filepath.Join(data, "state")); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, data, "--sign-interval", "1m")
	resp, err := http.Get(srv.HTTP + "/node/network")
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		LastTxID string `json:"last_txid"`
	}
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if info.LastTxID != sum.LastTxID {
		t.Fatalf("rebuilt state ends at %s, replay at %s", info.LastTxID, sum.LastTxID)
	}
	for i, a := range acks {
		if i%25 != 0 {
			continue
		}
		rc := getCOSE(t, srv.HTTP+"/receipt?transaction_id="+a.txid)
		want, _ := cose.ClaimsDigest(a.st)
		if _, err := receipt.VerifyWithClaimsDigest(rc, mustKey(t, certPEM), want); err != nil {
			t.Fatalf("after rebuild, %s: %v", a.txid, err)
		}
	}
	srv.stop()
	out2, _, code := runGavel(t, "audit", "replay", "--data", data)
	var sum2 struct{ Root string }
	if code != 0 || json.Unmarshal([]byte(out2), &sum2) != nil || sum2.Root != sum.Root {
		t.Fatalf("replay after rebuild: exit %d, root %s, want %s", code, sum2.Root, sum.Root)
	}
}

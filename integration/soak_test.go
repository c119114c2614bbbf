//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/receipt"
)

// TestSoakRepeatedKills registers statements from many clients for a long
// stretch while gavel is killed (SIGKILL) and restarted again and again,
// sometimes with its state deleted. At the end every acknowledged txid has a
// verifying receipt for the statement that was sent, no txid was given
// twice, and the auditor's replay of the log succeeds.
func TestSoakRepeatedKills(t *testing.T) {
	const cycles = 8
	data := t.TempDir()
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	type acked struct {
		txid string
		st   []byte
	}
	var (
		mu   sync.Mutex
		acks []acked
		sent atomic.Int64
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for cycle := range cycles {
		srv := startServer(t, data, "--sign-interval", "10ms")
		var stop atomic.Bool
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					st, err := iss.Sign(fmt.Sprintf("soak/%d/%d/%d", cycle, w, i), "text/plain", []byte("x"), time.Now())
					if err != nil {
						t.Error(err)
						return
					}
					sent.Add(1)
					resp, err := client.Post(srv.HTTP+"/entries", "application/cose", bytes.NewReader(st))
					if err != nil {
						return
					}
					var res struct{ TxID string }
					ok := resp.StatusCode == http.StatusCreated && json.NewDecoder(resp.Body).Decode(&res) == nil
					resp.Body.Close()
					if ok {
						mu.Lock()
						acks = append(acks, acked{res.TxID, st})
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(300+cycle*150) * time.Millisecond)
		srv.kill()
		stop.Store(true)
		wg.Wait()
		if cycle%3 == 2 {
			os.RemoveAll(filepath.Join(data, "state")) // rebuild from the log next time
		}
	}
	t.Logf("%d acknowledged of %d sent over %d kills", len(acks), sent.Load(), cycles)

	srv := startServer(t, data, "--sign-interval", "10ms")
	certPEM, err := os.ReadFile(filepath.Join(data, "service_cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key := mustKey(t, certPEM)
	seen := map[string]bool{}
	for _, a := range acks {
		if seen[a.txid] {
			t.Fatalf("txid %s acknowledged twice", a.txid)
		}
		seen[a.txid] = true
		rc := getCOSE(t, srv.HTTP+"/receipt?transaction_id="+a.txid)
		want, _ := cose.ClaimsDigest(a.st)
		if _, err := receipt.VerifyWithClaimsDigest(rc, key, want); err != nil {
			t.Fatalf("%s: %v", a.txid, err)
		}
	}
	srv.stop()
	if out, errOut, code := runGavel(t, "audit", "replay", "--data", data); code != 0 {
		t.Fatalf("audit replay: exit %d: %s %s", code, out, errOut)
	}
}

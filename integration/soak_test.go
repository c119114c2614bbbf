//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSoakRepeatedKills registers statements from many clients for a long
// stretch while gavel is killed (SIGKILL) and restarted again and again,
// sometimes with its state deleted. At the end every acknowledged txid has a
// verifying receipt for the statement that was sent, no txid was given
// twice, and the auditor's replay of the log succeeds.
func TestSoakRepeatedKills(t *testing.T) {
	const cycles = 8
	data := t.TempDir()
	reg := newRegistrar(t)
	for cycle := range cycles {
		srv := startServer(t, data, "--sign-interval", "10ms")
		stop := reg.start(t, srv.HTTP, fmt.Sprintf("soak/%d", cycle), 16)
		time.Sleep(time.Duration(300+cycle*150) * time.Millisecond)
		srv.kill()
		stop()
		if cycle%3 == 2 {
			os.RemoveAll(filepath.Join(data, "state")) // rebuild from the log next time
		}
	}
	acks := reg.acknowledged()
	t.Logf("%d acknowledged of %d sent over %d kills", len(acks), reg.sent.Load(), cycles)

	srv := startServer(t, data, "--sign-interval", "10ms")
	certPEM, err := os.ReadFile(filepath.Join(data, "service_cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	checkReceipts(t, srv.HTTP, certPEM, acks)
	srv.stop()
	if out, errOut, code := runGavel(t, "audit", "replay", "--data", data); code != 0 {
		t.Fatalf("audit replay: exit %d: %s %s", code, out, errOut)
	}
}

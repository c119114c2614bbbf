//go:build fault

package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	osexec "os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/handlers"
)

// TestFaultProbesOnAFullDisk fills the replica's file system to the last
// byte: /healthz stays alive, /readyz serves reads and refuses writes
// naming StorageFull, /metrics says so, every probe answers within the
// client's bound; once space is back, writes are ready again.
func TestFaultProbesOnAFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the full-disk test mounts a tmpfs: it needs root (run `sudo task test:fault`)")
	}
	dir := t.TempDir()
	if out, err := osexec.Command("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { osexec.Command("umount", "-l", dir).Run() })
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	metrics := handlers.NewMetrics()
	r, err := replica.Open(context.Background(), replica.Config{DataDir: filepath.Join(dir, "data"), NATSListen: "127.0.0.1:0", Logger: logger,
		OnCommit: func(c replica.CommitReport) { metrics.ObserveCommit(c.Kind, c.Took, c.Err) }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := handlers.NewHTTP(r, handlers.DefaultLimits(), logger)
	h.UseMetrics(metrics)
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Timeout: 5 * time.Second} // a probe that hangs fails
	probe := func(path string) (int, handlers.Health) {
		t.Helper()
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer resp.Body.Close()
		var v handlers.Health
		json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for buf := make([]byte, 64<<10); len(buf) > 0; {
		if _, err := f.Write(buf); err != nil {
			buf = buf[:len(buf)/2]
		}
	}
	f.Sync()
	f.Close()
	// Writes until the replica learns the disk is full.
	for i := 0; ; i++ {
		st, _ := iss.Sign(fmt.Sprintf("s%d", i), "text/plain", make([]byte, 2048), time.Now())
		r.RegisterStatement(context.Background(), st)
		if f := r.WriteFault(); f != nil && f.Code == "StorageFull" {
			break
		}
		if i > 10000 {
			t.Fatal("the replica never reported a full disk")
		}
	}
	if status, v := probe("/healthz"); status != 200 || v.Status != handlers.HealthOK {
		t.Errorf("/healthz on a full disk: %d %+v", status, v)
	}
	if status, v := probe("/readyz"); status != 200 || v.Checks["read"] != handlers.HealthOK {
		t.Errorf("/readyz on a full disk: %d %+v", status, v)
	}
	if status, v := probe("/readyz?write=1"); status != 503 || v.Reason != "StorageFull" || v.Message == "" {
		t.Errorf("/readyz?write=1 on a full disk: %d %+v", status, v)
	}
	m := scrapeMetrics(t, srv.URL)
	if m.value("gavel_writable") != 0 || m.value("gavel_write_fault", "code", "StorageFull") != 1 || m.value("gavel_write_errors_total", "cause", "StorageFull") < 1 {
		t.Errorf("metrics on a full disk: writable %v, fault %v", m.value("gavel_writable"), m["gavel_write_fault"])
	}
	os.Remove(filler)
	waitFor(t, "writes ready again", func() bool { status, _ := probe("/readyz?write=1"); return status == 200 })
}

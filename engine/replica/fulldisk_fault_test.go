//go:build fault

package replica_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/replica"
)

// mountTmpfs mounts a tmpfs of size bytes and unmounts it with the test.
func mountTmpfs(t *testing.T, size int) string {
	if os.Geteuid() != 0 {
		t.Skip("the full-disk test mounts a tmpfs: it needs root (run `sudo task test:fault`)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	return dir
}

// fill writes path until the file system is full, to the last byte.
func fill(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for len(buf) > 0 {
		w, err := f.Write(buf)
		n += int64(w)
		if err != nil {
			buf = buf[:len(buf)/2] // down to single bytes
		}
	}
	return n, f.Sync()
}

func TestFullDisk(t *testing.T) {
	dir := mountTmpfs(t, 48<<20)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	_ = io.Discard
	r, err := replica.Open(context.Background(), replica.Config{DataDir: filepath.Join(dir, "data"), NATSListen: "127.0.0.1:0", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acked []engine.TxID
	codes := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				st, err := iss.Sign(fmt.Sprintf("w%d-%d", w, i), "text/plain", make([]byte, 2048), time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				t0 := time.Now()
				res, err := r.RegisterStatement(context.Background(), st)
				mu.Lock()
				if err != nil {
					codes[engine.AsError(err).Code]++
					if d := time.Since(t0); d > 2*time.Second {
						codes["slow"]++
					}
				} else {
					var out struct{ TxID string }
					json.Unmarshal(res, &out)
					tx, _ := engine.ParseTxID(out.TxID)
					acked = append(acked, tx)
				}
				mu.Unlock()
			}
		}()
	}
	filler := filepath.Join(dir, "filler")
	n, err := fill(filler)
	t.Logf("filled %d bytes: %v", n, err)
	time.Sleep(3 * time.Second)
	info, _ := r.Network(context.Background())
	t.Logf("network while full: %+v", info.WriteError)
	mu.Lock()
	t.Logf("while full: %d acked, codes %v", len(acked), codes)
	mu.Unlock()
	os.Remove(filler)
	time.Sleep(5 * time.Second)
	close(stop)
	wg.Wait()
	info, _ = r.Network(context.Background())
	t.Logf("network after: writable %v %+v", info.Writable, info.WriteError)
	t.Logf("after: %d acked, codes %v", len(acked), codes)
	_ = errors.New
}

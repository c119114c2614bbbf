package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/receipt"
	"github.com/gavelhq/gavel/internal/syncbuf"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// gavelBinary builds cmd/gavel once per test binary.
func gavelBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		// The binary is built from the module's sources by a child process,
		// which go test's result cache cannot see: read them here so that a
		// change to any of them re-runs these tests.
		if err := readSources(".."); err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "gavel-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "gavel")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/gavel").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// readSources reads every Go source and module file under root.
func readSources(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".js") || d.Name() == "go.mod" || d.Name() == "go.sum") {
			_, err = os.ReadFile(path)
		}
		return err
	})
}

// server is a gavel serve process.
type server struct {
	t    testing.TB
	cmd  *exec.Cmd
	data string
	logs *syncbuf.Buffer
	HTTP string
	NATS string
}

func startServer(t testing.TB, data string, extra ...string) *server {
	t.Helper()
	os.Remove(filepath.Join(data, "endpoints.json")) // left behind by a killed process
	args := append([]string{"serve", "--data", data, "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(gavelBinary(t), args...)
	logs := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, data: data, logs: logs}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(data, "endpoints.json"))
		if err == nil {
			var ep struct{ HTTP, NATS string }
			if json.Unmarshal(b, &ep) == nil && ep.HTTP != "" {
				s.HTTP, s.NATS = ep.HTTP, ep.NATS
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gavel serve did not come up:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			s.t.Fatalf("gavel serve exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		s.t.Fatal("gavel serve did not stop on SIGTERM")
	}
}

// runGavel runs a gavel command and returns stdout, stderr and the exit code.
func runGavel(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(gavelBinary(t), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func getCOSE(t testing.TB, url string) []byte {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			return b
		}
		if resp.StatusCode != 202 || time.Now().After(deadline) {
			t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// acked is a registration the service acknowledged.
type acked struct {
	txid string
	st   []byte
}

// registrar registers statements from several clients at once, keeping
// what the service acknowledged (202 with an operation: the entry's txid).
type registrar struct {
	iss  *issuer.Issuer
	mu   sync.Mutex
	acks []acked
	sent atomic.Int64
}

func newRegistrar(t testing.TB) *registrar {
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return &registrar{iss: iss}
}

// start sends from workers clients to url until the returned stop is
// called (stop waits for them). A request the server died under was never
// acknowledged and is not kept.
func (r *registrar) start(t testing.TB, url, label string, workers int) (stop func()) {
	c := client.New(url, client.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	var stopping atomic.Bool
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stopping.Load(); i++ {
				st, err := r.iss.Sign(fmt.Sprintf("%s/%d/%d", label, w, i), "text/plain", []byte("x"), time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				r.sent.Add(1)
				op, err := c.Register(context.Background(), st)
				if engine.KindOf(err) == engine.KindUnavailable {
					return
				}
				if err == nil {
					r.mu.Lock()
					r.acks = append(r.acks, acked{op.OperationID, st})
					r.mu.Unlock()
				}
			}
		}()
	}
	return func() { stopping.Store(true); wg.Wait() }
}

func (r *registrar) acknowledged() []acked {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.acks)
}

// checkReceipts checks that every acknowledged txid is distinct and has a
// receipt that verifies, under the service key, for the statement sent.
func checkReceipts(t testing.TB, url string, certPEM []byte, acks []acked) {
	t.Helper()
	key := mustKey(t, certPEM)
	seen := map[string]bool{}
	for _, a := range acks {
		if seen[a.txid] {
			t.Fatalf("txid %s acknowledged twice", a.txid)
		}
		seen[a.txid] = true
		rc := getCOSE(t, url+"/receipt?transaction_id="+a.txid)
		want, _ := cose.ClaimsDigest(a.st)
		if _, err := receipt.VerifyWithClaimsDigest(rc, key, want); err != nil {
			t.Fatalf("%s: %v", a.txid, err)
		}
	}
}

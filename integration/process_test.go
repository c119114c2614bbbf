package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
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

// server is a gavel serve process.
type server struct {
	t    testing.TB
	cmd  *exec.Cmd
	data string
	logs *bytes.Buffer
	HTTP string
	NATS string
}

type lockedBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func startServer(t testing.TB, data string, extra ...string) *server {
	t.Helper()
	os.Remove(filepath.Join(data, "endpoints.json")) // left behind by a killed process
	args := append([]string{"serve", "--data", data, "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(gavelBinary(t), args...)
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, data: data, logs: &logs.Buffer}
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
			logs.mu.Lock()
			defer logs.mu.Unlock()
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

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runBounded runs a gavel command that must end by itself; the bound only
// guards the test against a hang.
func runBounded(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gavelBinary(t), args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("gavel %v did not end: %s", args, errOut.String())
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// TestOneServePerFolder: a second gavel serve on a running replica's folder
// is refused at once naming the holder, and so is an offline replay; after
// the replica is killed (SIGKILL, endpoints.json left behind) the replay
// works, because the kernel dropped the lock.
func TestOneServePerFolder(t *testing.T) {
	data := t.TempDir()
	srv := startServer(t, data)
	want := fmt.Sprintf("%s is in use by another gavel serve (pid %d)", data, srv.cmd.Process.Pid)

	_, errOut, code := runBounded(t, "serve", "--data", data, "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("second serve: exit %d, %s", code, errOut)
	}
	if strings.Contains(errOut, "listening") {
		t.Fatalf("second serve opened a listener before it was refused: %s", errOut)
	}
	_, errOut, code = runBounded(t, "audit", "replay", "--data", data)
	if code != 1 || !strings.Contains(errOut, want+": stop it, or replay with --nats") {
		t.Fatalf("replay of a running replica's folder: exit %d, %s", code, errOut)
	}
	resp, err := http.Get(srv.HTTP + "/node/network")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the first replica stopped serving: %v %v", resp, err)
	}
	resp.Body.Close()

	srv.kill()
	if _, err := os.Stat(filepath.Join(data, "endpoints.json")); err != nil {
		t.Fatalf("a killed replica should leave endpoints.json: %v", err)
	}
	out, errOut, code := runBounded(t, "audit", "replay", "--data", data)
	var sum struct{ Entries int }
	if code != 0 || json.Unmarshal([]byte(out), &sum) != nil || sum.Entries < 1 {
		t.Fatalf("replay after SIGKILL: exit %d, %s %s", code, out, errOut)
	}
}

// TestBusyPortFailsBeforeAnyKey: a busy HTTP or NATS port makes gavel serve
// fail at once, naming the address, with nothing but the lock file written.
func TestBusyPortFailsBeforeAnyKey(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	for _, tc := range []struct{ name, http, nats string }{
		{"http", busy, "127.0.0.1:0"},
		{"nats", "127.0.0.1:0", busy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			_, errOut, code := runBounded(t, "serve", "--data", data, "--http", tc.http, "--nats-listen", tc.nats)
			if code != 1 || !strings.Contains(errOut, tc.name+" listener "+busy+": ") || !strings.Contains(errOut, "address already in use") {
				t.Fatalf("exit %d, %s", code, errOut)
			}
			entries, _ := os.ReadDir(data)
			for _, e := range entries {
				if e.Name() != "LOCK" {
					t.Errorf("%s was written before the port was found busy", e.Name())
				}
			}
		})
	}
}

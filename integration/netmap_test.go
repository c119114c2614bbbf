package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gavelhq/gavel/internal/syncbuf"
)

// TestNetworkThroughTheCLI is issue 10's contract for tests, with real
// processes: gavel bootstrap, gavel serve --data D/service, two node agents
// (gavel node run --base D/nodes/<name> --url U, nothing else), an update
// proposed and voted with gavel member, seen by gavel node updates,
// accepted by one node with gavel node accept; at the flag day the acceptor
// exits 0 for a restart and the other exits 1 with the reason.
func TestNetworkThroughTheCLI(t *testing.T) {
	d := t.TempDir()
	if out, errOut, code := runGavel(t, "bootstrap", "--dir", d, "--nodes", "2", "--members", "1"); code != 0 {
		t.Fatalf("bootstrap: %s %s", out, errOut)
	}
	srv := startServer(t, filepath.Join(d, "service"), "--sign-interval", "20ms")
	type agentProc struct {
		cmd  *exec.Cmd
		logs *syncbuf.Buffer
		done chan int
	}
	start := func(name string) *agentProc {
		cmd := exec.Command(gavelBinary(t), "node", "run", "--base", filepath.Join(d, "nodes", name), "--url", srv.HTTP, "--max-poll", "20ms")
		logs := &syncbuf.Buffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &agentProc{cmd: cmd, logs: logs, done: make(chan int, 1)}
		go func() {
			cmd.Wait()
			p.done <- cmd.ProcessState.ExitCode()
		}()
		t.Cleanup(func() { cmd.Process.Signal(syscall.SIGKILL) })
		return p
	}
	n0, n1 := start("node0"), start("node1")
	waitUntil(t, "both NodeInfos in the map", func() bool {
		out, _, _ := runGavelQuiet(t, "node", "updates", "--base", filepath.Join(d, "nodes", "node0"))
		entries, _ := os.ReadDir(filepath.Join(d, "nodes", "node1", "node-infos"))
		return out == "" && len(entries) == 2
	})

	m := filepath.Join(d, "members")
	deadline := time.Now().UTC().Add(3 * time.Second).Format(time.RFC3339)
	prop := filepath.Join(d, "update.json")
	os.WriteFile(prop, []byte(`{"actions":[{"name":"set_network_parameters","args":{"description":"a notary","update_deadline":"`+deadline+`",`+
		`"parameters":{"minimum_platform_version":1,"notaries":[{"identity":"O=Notary,L=Zurich,C=CH","validating":true}],`+
		`"max_message_size":10485760,"max_transaction_size":20971520}}}]}`), 0o644)
	member := func(args ...string) map[string]any {
		full := append([]string{"member", args[0], "--url", srv.HTTP, "--cert", filepath.Join(m, "member0_cert.pem"),
			"--key", filepath.Join(m, "member0_privk.pem"), "--json"}, args[1:]...)
		out, errOut, code := runGavel(t, full...)
		var p map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &p) != nil {
			t.Fatalf("gavel %v: exit %d %s %s", args, code, out, errOut)
		}
		return p
	}
	p := member("propose", prop)
	if p = member("vote", "--proposal", p["proposalId"].(string)); p["proposalState"] != "Accepted" {
		t.Fatalf("%v", p)
	}
	var update map[string]any
	waitUntil(t, "the update in gavel node updates", func() bool {
		out, _, _ := runGavelQuiet(t, "node", "updates", "--base", filepath.Join(d, "nodes", "node0"))
		return out != "" && json.Unmarshal([]byte(out), &update) == nil
	})
	if update["auto_accepted"] != false || update["description"] != "a notary" || update["update_deadline"] == "" {
		t.Fatalf("update line %v", update)
	}
	hash := update["hash"].(string)
	if _, errOut, code := runGavel(t, "node", "accept", "--base", filepath.Join(d, "nodes", "node0"), strings.Repeat("0", 64)); code != 1 ||
		!strings.Contains(errOut, "pending update is "+hash) {
		t.Fatalf("a stale hash: exit %d %s", code, errOut)
	}
	if out, errOut, code := runGavel(t, "node", "accept", "--base", filepath.Join(d, "nodes", "node0"), hash); code != 0 {
		t.Fatalf("accept: %s %s", out, errOut)
	}
	for _, c := range []struct {
		p    *agentProc
		code int
		msg  string
	}{{n0, 0, "restart to use them"}, {n1, 1, "parameters were not accepted before the deadline; delete network-parameters and restart"}} {
		select {
		case code := <-c.p.done:
			logs := c.p.logs.String()
			if code != c.code || !strings.Contains(logs, c.msg) {
				t.Fatalf("agent exited %d, want %d with %q:\n%s", code, c.code, c.msg, logs)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("the agent did not exit at the flag day:\n%s", c.p.logs.String())
		}
	}
	// The acceptor restarts on the new parameters: the update file replaced
	// network-parameters.
	n0 = start("node0")
	waitUntil(t, "the restarted agent's parameters", func() bool {
		_, err := os.Stat(filepath.Join(d, "nodes", "node0", "network-parameters-update"))
		return os.IsNotExist(err)
	})
	n0.cmd.Process.Signal(syscall.SIGTERM)
	if code := <-n0.done; code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	srv.stop()
	if out, errOut, code := runGavel(t, "audit", "replay", "--data", filepath.Join(d, "service")); code != 0 || !strings.Contains(out, `"network_map"`) {
		t.Fatalf("replay: %s %s", out, errOut)
	}
}

func runGavelQuiet(t *testing.T, args ...string) (string, string, int) {
	cmd := exec.Command(gavelBinary(t), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Run()
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// gavel demo parameters runs its narration to the end: the non-acceptor
// leaves the map, its agent exits with the reason, the flag-day receipt
// verifies.
func TestDemoParameters(t *testing.T) {
	out, errOut, code := runGavel(t, "demo", "parameters", "--dir", t.TempDir())
	for _, want := range []string{"auto_accepted=true", "exits 1: gavel node run: parameters were not accepted before the deadline",
		"Carol left", "has a receipt that verifies"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("exit %d, no %q in:\n%s\n%s", code, want, out, errOut)
		}
	}
}

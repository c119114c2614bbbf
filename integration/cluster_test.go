package integration

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gavelhq/gavel/internal/syncbuf"
)

// TestClusterServeAndJoin runs the CLI contract of a replicable service
// with real processes: `serve --cluster` starts the first replica and
// writes its route to endpoints.json; `serve --join URL` adds a replica
// that appears Pending with role service, serves nothing (no
// endpoints.json) and, once members trust it, holds the service identity
// handed over sealed and serves as a follower: reads from its own state,
// writes forwarded to the primary. A --join URL that is not gavel is
// refused.
func TestClusterServeAndJoin(t *testing.T) {
	dir := t.TempDir()
	d1, d2 := filepath.Join(dir, "D1"), filepath.Join(dir, "D2")
	srv := startServer(t, d1, "--cluster", "--code-version", "A", "--cluster-listen", "127.0.0.1:0", "--sign-interval", "10ms")
	var ep struct{ HTTP, NATS, Cluster string }
	b, _ := os.ReadFile(filepath.Join(d1, "endpoints.json"))
	if err := json.Unmarshal(b, &ep); err != nil || !strings.HasPrefix(ep.Cluster, "nats-route://127.0.0.1:") || strings.HasSuffix(ep.Cluster, ":0") {
		t.Fatalf("endpoints.json %s: %v", b, err)
	}

	join := exec.Command(gavelBinary(t), "serve", "--join", srv.HTTP, "--data", d2, "--code-version", "A",
		"--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--cluster-listen", "127.0.0.1:0")
	logs := &syncbuf.Buffer{}
	join.Stdout, join.Stderr = logs, logs
	if err := join.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if join.ProcessState == nil {
			join.Process.Kill()
			join.Wait()
		}
	})
	var pending struct {
		Nodes []struct {
			NodeID string `json:"node_id"`
			Role   string `json:"role"`
			Status string `json:"status"`
		} `json:"nodes"`
	}
	waitUntil(t, "the joiner is a Pending service node", func() bool {
		pending.Nodes = nil
		r, err := http.Get(srv.HTTP + "/node/network/nodes?status=Pending")
		if err != nil {
			return false
		}
		defer r.Body.Close()
		json.NewDecoder(r.Body).Decode(&pending)
		return len(pending.Nodes) == 1
	})
	if n := pending.Nodes[0]; n.Role != "service" || n.Status != "Pending" {
		t.Fatalf("the joiner is %+v", n)
	}
	for _, f := range []string{"endpoints.json", "service_key.pem"} {
		if _, err := os.Stat(filepath.Join(d2, f)); !os.IsNotExist(err) {
			t.Fatalf("a Pending joiner wrote %s", f)
		}
	}

	cert, key := filepath.Join(d1, "member0_cert.pem"), filepath.Join(d1, "member0_privk.pem")
	proposal := filepath.Join(dir, "trust.json")
	os.WriteFile(proposal, []byte(`{"actions":[{"name":"transition_node_to_trusted","args":{"node_id":"`+pending.Nodes[0].NodeID+`"}}]}`), 0o644)
	out, errOut, code := runGavel(t, "member", "propose", "--url", srv.HTTP, "--cert", cert, "--key", key, "--json", proposal)
	var p map[string]any
	if json.Unmarshal([]byte(out), &p); code != 0 {
		t.Fatalf("propose: %s", errOut)
	}
	if p["proposalState"] == "Open" {
		out, errOut, code = runGavel(t, "member", "vote", "--url", srv.HTTP, "--cert", cert, "--key", key, "--json", "--proposal", p["proposalId"].(string))
		if json.Unmarshal([]byte(out), &p); code != 0 {
			t.Fatalf("vote: %s", errOut)
		}
	}
	if p["proposalState"] != "Accepted" {
		t.Fatalf("trust: %v", p)
	}
	waitUntil(t, "the trusted joiner holds the service identity", func() bool {
		a, _ := os.ReadFile(filepath.Join(d1, "service_cert.pem"))
		b, err := os.ReadFile(filepath.Join(d2, "service_cert.pem"))
		_, kerr := os.Stat(filepath.Join(d2, "service_key.pem"))
		return err == nil && kerr == nil && string(a) == string(b)
	})
	// Trusted, the joiner serves as a follower: endpoints.json, reads from
	// its own state, writes forwarded to the primary.
	var ep2 struct{ HTTP, NATS, Cluster string }
	waitUntil(t, "the trusted joiner serves", func() bool {
		b, err := os.ReadFile(filepath.Join(d2, "endpoints.json"))
		return err == nil && json.Unmarshal(b, &ep2) == nil && ep2.HTTP != ""
	})
	if code := httpStatus(t, ep2.HTTP+"/node/primary"); code != http.StatusNotFound {
		t.Fatalf("GET /node/primary on the follower: %d", code)
	}
	if code := httpStatus(t, srv.HTTP+"/node/primary"); code != http.StatusOK {
		t.Fatalf("GET /node/primary on the first replica: %d", code)
	}
	os.WriteFile(proposal, []byte(`{"actions":[{"name":"add_virtual_host_data","args":{"host_data":"`+strings.Repeat("ab", 32)+`"}}]}`), 0o644)
	out, errOut, code = runGavel(t, "member", "propose", "--url", ep2.HTTP, "--cert", cert, "--key", key, "--json", proposal)
	if json.Unmarshal([]byte(out), &p); code == 0 && p["proposalState"] == "Open" {
		out, errOut, code = runGavel(t, "member", "vote", "--url", ep2.HTTP, "--cert", cert, "--key", key, "--json", "--proposal", p["proposalId"].(string))
		json.Unmarshal([]byte(out), &p)
	}
	if code != 0 || p["proposalState"] != "Accepted" {
		t.Fatalf("writes through the follower: %s %s", out, errOut)
	}
	var nodesList struct {
		Nodes []struct {
			NodeID  string `json:"node_id"`
			Primary bool   `json:"primary"`
		} `json:"nodes"`
	}
	waitUntil(t, "the follower lists both replicas, one of them primary", func() bool {
		r, err := http.Get(ep2.HTTP + "/node/network/nodes?status=Trusted")
		if err != nil {
			return false
		}
		defer r.Body.Close()
		nodesList.Nodes = nil
		json.NewDecoder(r.Body).Decode(&nodesList)
		primaries := 0
		for _, n := range nodesList.Nodes {
			if n.Primary {
				primaries++
			}
		}
		return len(nodesList.Nodes) == 2 && primaries == 1
	})
	join.Process.Signal(syscall.SIGTERM)
	if err := join.Wait(); err != nil {
		t.Fatalf("the joiner exited with %v:\n%s", err, logs.String())
	}

	notGavel := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{}`)) }))
	defer notGavel.Close()
	_, errOut, code = runGavel(t, "serve", "--join", notGavel.URL, "--data", filepath.Join(dir, "D3"), "--code-version", "A",
		"--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--cluster-listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(errOut, "not a gavel service") {
		t.Fatalf("--join of a URL that is not gavel: exit %d: %s", code, errOut)
	}
	srv.stop()
}

// httpStatus is the status of a GET of url.
func httpStatus(t *testing.T, url string) int {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	return r.StatusCode
}

package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCodeUpgradeProcedure runs CCF's code upgrade procedure with real
// processes: a gavel service, and every node and member as a gavel
// command. Three nodes on A; members trust B; three nodes on B join and
// are trusted; the A nodes are retired, become removable and are deleted;
// A is distrusted and a fourth A node refused. Then the policy route: a
// node on C joins with a self-issued transparent statement judged by the
// SVN policy, and one below the threshold is refused. The stopped
// service's ledger is audited and its node read models rebuilt.
func TestCodeUpgradeProcedure(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	srv := startServer(t, data, "--sign-interval", "10ms")
	cert, key := filepath.Join(data, "member0_cert.pem"), filepath.Join(data, "member0_privk.pem")
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gavel := func(want int, args ...string) string {
		t.Helper()
		out, errOut, code := runGavel(t, args...)
		if code != want {
			t.Fatalf("gavel %s: exit %d, want %d: %s", strings.Join(args, " "), code, want, errOut)
		}
		return out + errOut
	}
	govern := func(actions string) {
		t.Helper()
		var p map[string]any
		json.Unmarshal([]byte(gavel(0, "member", "propose", "--url", srv.HTTP, "--cert", cert, "--key", key, "--json", write("p.json", `{"actions":[`+actions+`]}`))), &p)
		if p["proposalState"] == "Open" {
			json.Unmarshal([]byte(gavel(0, "member", "vote", "--url", srv.HTTP, "--cert", cert, "--key", key, "--json", "--proposal", p["proposalId"].(string))), &p)
		}
		if p["proposalState"] != "Accepted" {
			t.Fatalf("%s: %v", actions, p)
		}
	}
	hostData := func(code string) string {
		sum := sha256.Sum256([]byte("code " + code))
		return hex.EncodeToString(sum[:])
	}
	ids := map[string]string{}
	join := func(name, code, statement string, want int) string {
		t.Helper()
		keys := filepath.Join(dir, name)
		ids[name] = strings.TrimSpace(gavel(0, "node", "keygen", "--out", keys))
		ts := ""
		if statement != "" {
			ts = `,"host_data_transparent_statement_path":"` + statement + `"`
		}
		cfg := write(name+".json", `{"role":"participant","address":"`+name+`.test:443","code_version":"`+code+`",
			"attestation":{"format":"virtual","host_data":"`+hostData(code)+`","measurement":"cafe"}`+ts+`}`)
		return gavel(want, "node", "join", "--url", srv.HTTP, "--key-dir", keys, "--config", cfg)
	}
	trust := func(name string) {
		govern(`{"name":"transition_node_to_trusted","args":{"node_id":"` + ids[name] + `"}}`)
	}
	govern(`{"name":"add_virtual_measurement","args":{"measurement":"cafe"}},{"name":"add_virtual_host_data","args":{"host_data":"` + hostData("A") + `"}}`)
	for _, n := range []string{"a1", "a2", "a3"} {
		if out := join(n, "A", "", 0); !strings.Contains(out, `"Pending"`) {
			t.Fatalf("join %s: %s", n, out)
		}
		trust(n)
	}
	govern(`{"name":"add_virtual_host_data","args":{"host_data":"` + hostData("B") + `"}}`)
	for _, n := range []string{"b1", "b2", "b3"} {
		join(n, "B", "", 0)
		trust(n)
	}
	var list struct{ Nodes []map[string]any }
	json.Unmarshal([]byte(gavel(0, "nodes", "--url", srv.HTTP, "--status", "Trusted", "--json")), &list)
	if len(list.Nodes) != 7 { // six and the service's own
		t.Fatalf("%d trusted nodes", len(list.Nodes))
	}
	for _, n := range []string{"a1", "a2", "a3"} {
		govern(`{"name":"remove_node","args":{"node_id":"` + ids[n] + `"}}`)
		deadline := time.Now().Add(20 * time.Second)
		for {
			json.Unmarshal([]byte(gavel(0, "nodes", "--url", srv.HTTP, "--removable", "--json")), &list)
			if len(list.Nodes) == 1 && list.Nodes[0]["node_id"] == ids[n] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never became removable: %v", n, list)
			}
			time.Sleep(20 * time.Millisecond)
		}
		gavel(0, "node", "delete", "--url", srv.HTTP, "--id", ids[n])
	}
	govern(`{"name":"remove_virtual_host_data","args":{"host_data":"` + hostData("A") + `"}}`)
	if out := join("a4", "A", "", 1); !strings.Contains(out, "InvalidQuote") {
		t.Fatalf("a fourth A node: %s", out)
	}

	// The policy route.
	pol, err := os.ReadFile(filepath.Join("..", "scripts", "policies", "min_svn.js"))
	if err != nil {
		t.Fatal(err)
	}
	src, _ := json.Marshal(string(pol))
	govern(`{"name":"set_node_join_policy","args":{"policy":` + string(src) + `}}`)
	iss := filepath.Join(dir, "issuer")
	did := strings.TrimSpace(gavel(0, "statement", "issuer", "--out", iss))
	hd, _ := hex.DecodeString(hostData("C"))
	payload := write("hostdata.bin", string(hd))
	statement := func(name string, svn string) string {
		st := gavel(0, "statement", "sign", "--key", filepath.Join(iss, "key.pem"), "--chain", filepath.Join(iss, "chain.pem"),
			"--issuer", did, "--subject", "gavel/code", "--svn", svn, payload)
		txid := strings.TrimSpace(gavel(0, "statement", "register", "--url", srv.HTTP, write(name+".cose", st)))
		return write(name+".ts.cose", string(getCOSE(t, srv.HTTP+"/entries/"+txid+"/statement")))
	}
	if out := join("c1", "C", statement("c1", "3"), 0); !strings.Contains(out, `"Pending"`) {
		t.Fatalf("join c1: %s", out)
	}
	trust("c1")
	if out := join("c2", "C", statement("c2", "1"), 1); !strings.Contains(out, "SVN too low: 1") {
		t.Fatalf("join c2: %s", out)
	}
	srv.stop()
	var sum struct {
		Nodes uint64 `json:"nodes"`
	}
	json.Unmarshal([]byte(gavel(0, "audit", "replay", "--data", data)), &sum)
	if sum.Nodes != 10 { // seven joins, three deletes
		t.Fatalf("the auditor re-derived %d node entries", sum.Nodes)
	}
	var snap struct {
		Nodes           []map[string]any
		TrustedHostData []map[string]any `json:"trusted_host_data"`
		JoinPolicy      *string          `json:"join_policy"`
		EqualsLive      *bool            `json:"rebuilt_equals_live"`
	}
	// The rebuild compares the read model the service kept with the log's
	// fold, byte for byte (it fails when they differ).
	json.Unmarshal([]byte(gavel(0, "projections", "rebuild", "--data", data)), &snap)
	if len(snap.Nodes) != 5 || len(snap.TrustedHostData) != 1 || snap.JoinPolicy == nil || snap.EqualsLive == nil || !*snap.EqualsLive {
		t.Fatalf("rebuilt %+v", snap)
	}
}

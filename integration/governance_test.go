package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGovernanceThroughTheCLI runs a service with three members, governs it
// with the gavel member commands (2-of-3 votes, a withdrawal, a rejected
// proposal, a constitution replaced mid-history), then stops it and has the
// auditor replay and re-execute the whole history from the data folder.
func TestGovernanceThroughTheCLI(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	for _, name := range []string{"alice", "bob", "carol", "dave"} {
		if out, errOut, code := runGavel(t, "member", "keygen", "--out", keys, "--name", name, "--alg", map[string]string{"alice": "ES256", "bob": "ES384", "carol": "EdDSA", "dave": "ES256"}[name]); code != 0 {
			t.Fatalf("keygen %s: %s %s", name, out, errOut)
		}
	}
	cert := func(n string) string { return filepath.Join(keys, n+"_cert.pem") }
	key := func(n string) string { return filepath.Join(keys, n+"_privk.pem") }
	data := filepath.Join(dir, "data")
	srv := startServer(t, data, "--member-cert", cert("alice"), "--member-cert", cert("bob"), "--member-cert", cert("carol"))
	if _, err := os.Stat(filepath.Join(data, "member0_cert.pem")); !os.IsNotExist(err) {
		t.Fatal("member0 was created although members were given")
	}

	member := func(who string, args ...string) map[string]any {
		t.Helper()
		full := append([]string{"member", args[0], "--url", srv.HTTP, "--cert", cert(who), "--key", key(who), "--json"}, args[1:]...)
		out, errOut, code := runGavel(t, full...)
		if code != 0 {
			t.Fatalf("gavel %v: exit %d: %s", args, code, errOut)
		}
		var p map[string]any
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatalf("gavel %v: %q", args, out)
		}
		return p
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	davePEM, _ := os.ReadFile(cert("dave"))
	pemJSON, _ := json.Marshal(string(davePEM))

	// 2 of 3 accept dave.
	p := member("alice", "propose", write("add-dave.json", `{"actions":[{"name":"set_member","args":{"cert":`+string(pemJSON)+`}}]}`))
	id := p["proposalId"].(string)
	if p["proposalState"] != "Open" {
		t.Fatalf("%v", p)
	}
	if p = member("bob", "vote", "--proposal", id); p["proposalState"] != "Open" {
		t.Fatalf("%v", p)
	}
	if p = member("carol", "vote", "--proposal", id); p["proposalState"] != "Accepted" {
		t.Fatalf("%v", p)
	}
	// dave is Accepted: it may not propose until it acknowledges the state
	// digest (gavel member ack), then it is Active.
	if _, errOut, code := runGavel(t, "member", "propose", "--url", srv.HTTP, "--cert", cert("dave"), "--key", key("dave"),
		write("early.json", `{"actions":[{"name":"remove_node_join_policy","args":{}}]}`)); code != 1 || !strings.Contains(errOut, "Signer is not an ACTIVE member") {
		t.Fatalf("an Accepted member proposing: exit %d %s", code, errOut)
	}
	if m := member("dave", "ack"); m["status"] != "Active" || m["memberId"] == "" {
		t.Fatalf("ack: %v", m)
	}
	// A withdrawal, and a proposal voted down.
	p = member("bob", "propose", write("jp.json", `{"actions":[{"name":"set_node_join_policy","args":{"policy":"export function apply() { return true; }"}}]}`))
	if p = member("bob", "withdraw", "--proposal", p["proposalId"].(string)); p["proposalState"] != "Withdrawn" {
		t.Fatalf("%v", p)
	}
	p = member("carol", "propose", write("cfg.json", `{"actions":[{"name":"set_service_configuration","args":{"max_open_proposals":5}}]}`))
	cid := p["proposalId"].(string)
	// Of four members three must agree: two against reject it.
	for _, who := range []string{"alice", "bob"} {
		p = member(who, "vote", "--proposal", cid, "--reject")
	}
	if p["proposalState"] != "Rejected" {
		t.Fatalf("%v", p)
	}
	// A new constitution (unanimity), accepted through conditional ballots;
	// then a proposal judged by it.
	src, err := os.ReadFile(filepath.Join("..", "engine", "gov", "testdata", "constitutions", "unanimous.js"))
	if err != nil {
		t.Fatal(err)
	}
	srcJSON, _ := json.Marshal(string(src))
	p = member("dave", "propose", write("const.json", `{"actions":[{"name":"set_constitution","args":{"constitution":`+string(srcJSON)+`}}]}`))
	kid := p["proposalId"].(string)
	ballot := write("ballot.js", `export function vote(proposal, proposerId) { return JSON.parse(proposal).actions[0].name === "set_constitution"; }`)
	for _, who := range []string{"alice", "bob", "carol"} {
		p = member(who, "vote", "--proposal", kid, "--ballot", ballot)
	}
	if p["proposalState"] != "Accepted" {
		t.Fatalf("%v", p)
	}
	p = member("alice", "propose", write("jp2.json", `{"actions":[{"name":"remove_node_join_policy","args":{}}]}`))
	for _, who := range []string{"alice", "bob", "carol"} {
		p = member(who, "vote", "--proposal", p["proposalId"].(string))
	}
	if p["proposalState"] != "Open" { // unanimity: dave has not voted yet
		t.Fatalf("%v", p)
	}
	if p = member("dave", "vote", "--proposal", p["proposalId"].(string)); p["proposalState"] != "Accepted" {
		t.Fatalf("%v", p)
	}
	out, errOut, code := runGavel(t, "member", "proposals", "--url", srv.HTTP)
	if code != 0 || strings.Count(out, "Accepted") != 3 || !strings.Contains(out, "Withdrawn") || !strings.Contains(out, "Rejected") {
		t.Fatalf("proposals table (exit %d): %s %s", code, out, errOut)
	}
	srv.stop()

	out, errOut, code = runGavel(t, "audit", "replay", "--data", data)
	var sum struct {
		Governance int `json:"governance"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &sum) != nil || sum.Governance < 16 {
		t.Fatalf("audit replay: exit %d: %s %s", code, out, errOut)
	}
}

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// hostileBallots are the hostile scripts of issue 6 as ballots; each must
// end as a recorded, deterministic vote failure.
var hostileBallots = []string{
	// Check (a): three million iterations, on a service with default settings.
	`export function vote() { let n = 0; for (let i = 0; i < 3000000; i++) n++; return n > 0; }`,
	`export function vote() { return new Uint8Array(1 << 18).join("x".repeat(1 << 22)).length > 0; }`,
	`export function vote() { let s = "x"; for (;;) s = s + s; }`,
	`export function vote() { let s = "x"; for (;;) { try { s += s; } catch (e) {} } }`,
	"export function vote() { let s = 'x'; for (;;) s = `${s}${s}`; }",
	"export function vote() { const s = 'x'.repeat(1 << 22); return `${s}${s}${s}${s}${s}${s}${s}${s}`.length > 0; }",
	`export function vote() { const a = []; for (;;) a.push(a.length); }`,
	`export function vote() { const o = {}; for (let i = 0; i < 5000; i++) o["k" + i] = i; for (;;) { Object.keys(o); gavel.kv.entries("gov.members"); } }`,
	`export function vote() { for (let i = 0; ; i++) gavel.constitution.check("export function validate() { return { valid: true }; } export function resolve() { return 'Accepted'; } export function apply() {} // " + i); }`,
	`export function vote() { function f(n) { return f(n + 1) + 1; } return f(0); }`,
	`export function vote() { return BigInt(1) > 0; }`,
	`export function vote() { class C { static #n = 0; m() { return ++C.#n; } } return new C().m() === 1; }`,
}

// hostileConstitutions are set_constitution arguments that must be refused
// at validation (they would brick governance).
var hostileConstitutions = []string{
	"let s = 'x'; while (true) s += s;\nexport function validate() { return { valid: true }; } export function resolve() { return 'Accepted'; } export function apply() {}",
	"const s = 'x'.repeat(1 << 22); const t = `${s}${s}${s}${s}${s}${s}${s}${s}`;\nexport function validate() { return { valid: true }; } export function resolve() { return 'Accepted'; } export function apply() {}",
	"export function validate() { return { valid: true }; } export function resolve() { for (;;) {} } export function apply() {}",
	"export function validate() { return { valid: ((1n << 60000000n) - 1n).toString().length > 0 }; } export function resolve() { return 'Accepted'; } export function apply() {}",
}

// TestReplayInAnotherProcess runs the hostile scripts on a service, with
// a ballot of three million iterations and a change of the script budget
// by governance, stops it cleanly, and replays the ledger with the auditor
// in a separate process with other Go settings (GOMAXPROCS=1, GOGC=10) and
// other safety-net flags: every recorded outcome must be re-derived.
func TestReplayInAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	for _, name := range []string{"alice", "bob", "carol"} {
		if out, errOut, code := runGavel(t, "member", "keygen", "--out", keys, "--name", name); code != 0 {
			t.Fatalf("keygen %s: %s %s", name, out, errOut)
		}
	}
	cert := func(n string) string { return filepath.Join(keys, n+"_cert.pem") }
	key := func(n string) string { return filepath.Join(keys, n+"_privk.pem") }
	data := filepath.Join(dir, "data")
	srv := startServer(t, data, "--member-cert", cert("alice"), "--member-cert", cert("bob"), "--member-cert", cert("carol"))

	n := 0
	write := func(body string) string {
		n++
		p := filepath.Join(dir, fmt.Sprintf("f%d", n))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	member := func(who string, want int, args ...string) (map[string]any, string) {
		t.Helper()
		full := append([]string{"member", args[0], "--url", srv.HTTP, "--cert", cert(who), "--key", key(who), "--json"}, args[1:]...)
		out, errOut, code := runGavel(t, full...)
		if code != want {
			t.Fatalf("gavel %v: exit %d (want %d): %s %s", args, code, want, out, errOut)
		}
		var p map[string]any
		json.Unmarshal([]byte(out), &p)
		return p, errOut
	}
	propose := func(body string) string {
		t.Helper()
		p, _ := member("alice", 0, "propose", write(body))
		return p["proposalId"].(string)
	}

	for i, src := range hostileBallots {
		id := propose(fmt.Sprintf(`{"actions":[{"name":"set_service_configuration","args":{"max_open_proposals":%d}}]}`, 2000+i))
		p, _ := member("bob", 0, "vote", "--proposal", id, "--ballot", write(src))
		failures, _ := p["voteFailures"].(map[string]any)
		if i == len(hostileBallots)-1 {
			// The static #n counter is fresh at every call: a valid yes.
			if len(failures) != 0 || p["proposalState"] != "Open" {
				t.Fatalf("ballot %d: %v", i, p)
			}
			continue
		}
		if p["proposalState"] != "Open" || len(failures) != 1 {
			t.Fatalf("ballot %d: %v", i, p)
		}
	}
	for i, src := range hostileConstitutions {
		body, _ := json.Marshal(map[string]any{"actions": []any{map[string]any{"name": "set_constitution", "args": map[string]any{"constitution": src}}}})
		if _, errOut := member("alice", 1, "propose", write(string(body))); !strings.Contains(errOut, "ProposalFailedToValidate") {
			t.Fatalf("constitution %d: %s", i, errOut)
		}
	}
	// A smaller budget by governance; the auditor must use it from here on.
	id := propose(`{"actions":[{"name":"set_js_runtime_options","args":{"max_fuel":50000}}]}`)
	member("alice", 0, "vote", "--proposal", id)
	if p, _ := member("bob", 0, "vote", "--proposal", id); p["proposalState"] != "Accepted" {
		t.Fatalf("set_js_runtime_options: %v", p)
	}
	id = propose(`{"actions":[{"name":"set_service_configuration","args":{"max_open_proposals":3000}}]}`)
	p, _ := member("bob", 0, "vote", "--proposal", id, "--ballot", write(`export function vote() { let n = 0; for (let i = 0; i < 100000; i++) n++; return true; }`))
	if failures, _ := p["voteFailures"].(map[string]any); len(failures) != 1 {
		t.Fatalf("a ballot over the new budget: %v", p)
	}
	srv.stop()

	cmd := exec.Command(gavelBinary(t), "audit", "replay", "--data", data, "--script-timeout", "5s", "--script-heap", "64000000")
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "GOGC=10")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("audit replay in another process: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	var sum struct {
		Governance   int `json:"governance"`
		Inconclusive []any
	}
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil || sum.Governance == 0 || len(sum.Inconclusive) != 0 {
		t.Fatalf("replay summary %s (%v)", out.String(), err)
	}
}

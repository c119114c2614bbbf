package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gavelhq/gavel/engine/govreq"
)

// run calls the CLI in-process, as the binary would be called.
func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = dispatch(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// writeFile writes data under dir and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUsageErrors checks that every command refuses malformed command
// lines with exit code 2 and a message, before doing any work.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "f", []byte("x"))
	g := writeFile(t, dir, "g", []byte("y"))
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"unknown command", []string{"frobnicate"}},
		{"unknown subcommand", []string{"audit", "frobnicate"}},
		{"group without subcommand", []string{"statement"}},

		{"sign without flags", []string{"statement", "sign", f}},
		{"sign without key", []string{"statement", "sign", "--chain", f, "--issuer", "did:x509:x", "--subject", "s", f}},
		{"sign without chain", []string{"statement", "sign", "--key", f, "--issuer", "did:x509:x", "--subject", "s", f}},
		{"sign without issuer", []string{"statement", "sign", "--key", f, "--chain", f, "--subject", "s", f}},
		{"sign without subject", []string{"statement", "sign", "--key", f, "--chain", f, "--issuer", "did:x509:x", f}},
		{"sign without payload", []string{"statement", "sign", "--key", f, "--chain", f, "--issuer", "did:x509:x", "--subject", "s"}},
		{"sign with two payloads", []string{"statement", "sign", "--key", f, "--chain", f, "--issuer", "did:x509:x", "--subject", "s", f, g}},
		{"sign with unknown flag", []string{"statement", "sign", "--key", f, "--chain", f, "--issuer", "did:x509:x", "--subject", "s", "--bogus", f}},
		{"sign with flag missing its value", []string{"statement", "sign", "--key"}},

		{"register without file", []string{"statement", "register", "--url", "http://127.0.0.1:1"}},
		{"register with two files", []string{"statement", "register", "--url", "http://127.0.0.1:1", f, g}},
		{"register with unknown flag", []string{"statement", "register", "--bogus", f}},

		{"receipt without txid", []string{"receipt", "--url", "http://127.0.0.1:1"}},
		{"receipt with extra argument", []string{"receipt", "--url", "http://127.0.0.1:1", "--txid", "2.3", f}},
		{"receipt with unknown flag", []string{"receipt", "--txid", "2.3", "--bogus"}},
		{"receipt with bad duration", []string{"receipt", "--txid", "2.3", "--wait", "soon"}},

		{"verify-receipt without cert", []string{"audit", "verify-receipt", f}},
		{"verify-receipt without receipt", []string{"audit", "verify-receipt", "--service-cert", f}},
		{"verify-receipt with two receipts", []string{"audit", "verify-receipt", "--service-cert", f, f, g}},
		{"verify-receipt with unknown flag", []string{"audit", "verify-receipt", "--service-cert", f, "--bogus", f}},

		{"verify-statement without keys", []string{"audit", "verify-statement", f}},
		{"verify-statement with both keys", []string{"audit", "verify-statement", "--service-cert", f, "--service-params", g, f}},
		{"verify-statement without file", []string{"audit", "verify-statement", "--service-cert", f}},
		{"verify-statement with two files", []string{"audit", "verify-statement", "--service-cert", f, f, g}},
		{"verify-statement with unknown flag", []string{"audit", "verify-statement", "--service-cert", f, "--bogus", f}},

		{"replay without source", []string{"audit", "replay"}},
		{"replay with both sources", []string{"audit", "replay", "--data", dir, "--nats", "nats://127.0.0.1:1", "--creds", f}},
		{"replay nats without creds", []string{"audit", "replay", "--nats", "nats://127.0.0.1:1"}},
		{"replay with extra argument", []string{"audit", "replay", "--data", dir, f}},
		{"replay with unknown flag", []string{"audit", "replay", "--data", dir, "--bogus"}},

		{"issuer with argument", []string{"statement", "issuer", "--out", dir, f}},
		{"issuer with unknown algorithm", []string{"statement", "issuer", "--out", dir, "--alg", "ROT13"}},
		{"issuer with unknown flag", []string{"statement", "issuer", "--bogus"}},

		{"keygen without name", []string{"member", "keygen", "--out", dir}},
		{"keygen with a path for a name", []string{"member", "keygen", "--out", dir, "--name", "a/b"}},
		{"keygen with unknown algorithm", []string{"member", "keygen", "--out", dir, "--name", "x", "--alg", "RS256"}},
		{"propose without key", []string{"member", "propose", "--cert", f, f}},
		{"propose without file", []string{"member", "propose", "--cert", f, "--key", g}},
		{"propose with two files", []string{"member", "propose", "--cert", f, "--key", g, f, g}},
		{"vote without proposal", []string{"member", "vote", "--cert", f, "--key", g}},
		{"vote with ballot and reject", []string{"member", "vote", "--cert", f, "--key", g, "--proposal", "p", "--ballot", f, "--reject"}},
		{"withdraw without proposal", []string{"member", "withdraw", "--cert", f, "--key", g}},
		{"proposals with argument", []string{"member", "proposals", f}},
		{"sign with unknown type", []string{"member", "sign", "--type", "recovery_share", "--cert", f, "--key", g, f}},
		{"sign a state_digest with a file", []string{"member", "sign", "--type", "state_digest", "--cert", f, "--key", g, f}},
		{"sign an ack without file", []string{"member", "sign", "--type", "ack", "--cert", f, "--key", g}},
		{"sign a ballot without proposal id", []string{"member", "sign", "--type", "ballot", "--cert", f, "--key", g, f}},
		{"sign a proposal with a proposal id", []string{"member", "sign", "--type", "proposal", "--proposal-id", "p", "--cert", f, "--key", g, f}},
		{"serve with argument", []string{"serve", f}},
		{"serve with bad log level", []string{"serve", "--log-level", "chatty"}},
		{"serve with unknown flag", []string{"serve", "--bogus"}},
		{"bench gov with zero proposals", []string{"bench", "gov", "--proposals", "0"}},
		{"bench scale with window over entries", []string{"bench", "scale", "--entries", "10", "--window", "20"}},

		{"bench commit with argument", []string{"bench", "commit", f}},
		{"bench commit with zero requests", []string{"bench", "commit", "-n", "0"}},
		{"bench commit with unknown flag", []string{"bench", "commit", "--bogus"}},
		{"bench gov with malformed number", []string{"bench", "gov", "--proposals", "many"}},
		{"bench replicated with zero rounds", []string{"bench", "replicated", "--rounds", "0"}},

		{"completion without shell", []string{"completion"}},
		{"completion with two shells", []string{"completion", "bash", "zsh"}},
		{"dev snp-signer without out", []string{"dev", "snp-signer"}},
		{"version with unknown flag", []string{"version", "--bogus"}},
		{"ack without cert", []string{"member", "ack", "--key", g}},
		{"ack with argument", []string{"member", "ack", "--cert", f, "--key", g, f}},
		{"proposals with malformed url flag", []string{"member", "proposals", "--url"}},
		{"proposal without action", []string{"member", "proposal", "--url", "http://127.0.0.1:1"}},
		{"proposal with malformed arg", []string{"member", "proposal", "--url", "http://127.0.0.1:1", "set_member", "--arg", "cert"}},
		{"proposal with bad action name", []string{"member", "proposal", "--url", "http://127.0.0.1:1", "../x"}},
		{"register with bad duration", []string{"statement", "register", "--wait", "soon", f}},
		{"serve with malformed number", []string{"serve", "--sign-every", "often"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, exitUsage, out, errOut)
			}
			if !strings.Contains(strings.ToLower(errOut), "usage") {
				t.Fatalf("no usage on stderr: %q", errOut)
			}
			if out != "" {
				t.Fatalf("a usage error wrote to stdout: %q", out)
			}
		})
	}
}

// TestEveryCommandRefusesBadCommandLines: every registered command answers
// an unknown flag and too many arguments with usage (exit 2, its own help
// on stderr, nothing on stdout, no stack trace), before doing any work.
func TestEveryCommandRefusesBadCommandLines(t *testing.T) {
	for name := range commands {
		words := strings.Fields(name)
		for what, args := range map[string][]string{
			"unknown flag":     append(append([]string{}, words...), "--no-such-flag"),
			"extra arguments":  append(append([]string{}, words...), "x", "y", "z"),
			"flag after extra": append(append([]string{}, words...), "x", "y", "z", "--no-such-flag"),
		} {
			t.Run(name+"/"+what, func(t *testing.T) {
				code, out, errOut := run(args...)
				if code != exitUsage || out != "" {
					t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
				}
				if !strings.Contains(errOut, "usage: gavel "+name) {
					t.Fatalf("stderr does not show the command's own usage: %q", errOut)
				}
				if strings.Contains(errOut, "goroutine ") || strings.Contains(errOut, "panic") {
					t.Fatalf("a stack trace: %s", errOut)
				}
			})
		}
	}
}

func TestHelp(t *testing.T) {
	// No command at all is a usage error that still lists the commands
	// (on stderr, as every usage error).
	if code, out, errOut := run(); code != exitUsage || out != "" || !strings.Contains(errOut, "audit replay") {
		t.Fatalf("no command: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		code, out, _ := run(args...)
		if code != exitOK {
			t.Fatalf("%v: exit %d", args, code)
		}
		for _, name := range []string{"statement sign", "statement register", "receipt", "audit verify-receipt", "audit verify-statement", "audit replay"} {
			if !strings.Contains(out, name) {
				t.Fatalf("%v: help does not list %q:\n%s", args, name, out)
			}
		}
	}
	// A command's own -h is help, not a usage error.
	if code, _, errOut := run("audit", "verify-receipt", "-h"); code != exitOK || !strings.Contains(errOut, "--service-cert") {
		t.Fatalf("verify-receipt -h: exit %d, %q", code, errOut)
	}
}

// TestMemberFiles checks the member commands that work on files alone.
func TestMemberFiles(t *testing.T) {
	dir := t.TempDir()
	code, id, errOut := run("member", "keygen", "--out", dir, "--name", "alice", "--alg", "EdDSA")
	if code != exitOK || len(strings.TrimSpace(id)) != 64 {
		t.Fatalf("keygen: exit %d %q %q", code, id, errOut)
	}
	if code, _, errOut := run("member", "keygen", "--out", dir, "--name", "alice"); code != exitFailed || !strings.Contains(errOut, "exists") {
		t.Fatalf("keygen over an existing key: exit %d %q", code, errOut)
	}
	cert, key := filepath.Join(dir, "alice_cert.pem"), filepath.Join(dir, "alice_privk.pem")
	body := writeFile(t, dir, "p.json", []byte(`{"actions":[]}`))
	code, env, errOut := run("member", "sign", "--type", "proposal", "--cert", cert, "--key", key, body)
	if code != exitOK {
		t.Fatalf("sign: exit %d %q", code, errOut)
	}
	req, err := govreq.Parse([]byte(env), 0)
	if err != nil || req.Type != govreq.MsgProposal || req.KeyID != strings.TrimSpace(id) || string(req.Payload) != `{"actions":[]}` {
		t.Fatalf("signed envelope %+v: %v", req, err)
	}
	certPEM, _ := os.ReadFile(cert)
	c, _ := govreq.ParseCertificatePEM(certPEM)
	if err := req.Verify(c); err != nil {
		t.Fatal(err)
	}
	code, env, _ = run("member", "sign", "--type", "withdrawal", "--proposal-id", strings.Repeat("a", 64), "--cert", cert, "--key", key)
	if req, err := govreq.Parse([]byte(env), 0); code != exitOK || err != nil || req.ProposalID != strings.Repeat("a", 64) {
		t.Fatalf("withdrawal: exit %d %v", code, err)
	}
	// A key that is not the certificate's, and files that are not keys.
	other := t.TempDir()
	run("member", "keygen", "--out", other, "--name", "bob")
	for _, args := range [][]string{
		{"member", "sign", "--type", "proposal", "--cert", cert, "--key", filepath.Join(other, "bob_privk.pem"), body},
		{"member", "sign", "--type", "proposal", "--cert", body, "--key", key, body},
		{"member", "propose", "--url", "http://127.0.0.1:1", "--cert", cert, "--key", key, writeFile(t, dir, "bad.json", []byte("{not json"))},
	} {
		if code, _, errOut := run(args...); code == exitOK || errOut == "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

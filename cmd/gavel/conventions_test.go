package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGroupsListTheirSubcommands: a command group alone names every
// subcommand and is a usage error.
func TestGroupsListTheirSubcommands(t *testing.T) {
	groups := map[string]bool{}
	for name := range commands {
		if g, _, ok := strings.Cut(name, " "); ok {
			groups[g] = true
		}
	}
	if len(groups) == 0 {
		t.Fatal("no command groups registered")
	}
	for g := range groups {
		code, _, stderr := run(g)
		if code != exitUsage {
			t.Errorf("gavel %s: exit %d, want %d", g, code, exitUsage)
		}
		for _, sub := range commandNames(g) {
			if !strings.Contains(stderr, sub) {
				t.Errorf("gavel %s does not list %q:\n%s", g, sub, stderr)
			}
		}
		if code, _, stderr := run(g, "frobnicate"); code != exitUsage || !strings.Contains(stderr, `no subcommand "frobnicate"`) {
			t.Errorf("gavel %s frobnicate: exit %d, %q", g, code, stderr)
		}
	}
}

// TestHelpCommand: gavel help COMMAND prints that command's own usage,
// which names its flags.
func TestHelpCommand(t *testing.T) {
	for name := range commands {
		code, stdout, _ := run(append([]string{"help"}, strings.Fields(name)...)...)
		if code != exitOK {
			t.Errorf("gavel help %s: exit %d", name, code)
		}
		if !strings.Contains(stdout, "usage") && !strings.Contains(stdout, "Usage") {
			t.Errorf("gavel help %s prints no usage:\n%s", name, stdout)
		}
	}
	if code, _, _ := run("help", "frobnicate"); code != exitUsage {
		t.Errorf("gavel help frobnicate: exit %d, want %d", code, exitUsage)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, _ := run(args...)
		if code != exitOK || !strings.HasPrefix(stdout, "gavel ") {
			t.Errorf("gavel %v: exit %d, %q", args, code, stdout)
		}
	}
	code, stdout, _ := run("version", "--json")
	var v map[string]string
	if code != exitOK || json.Unmarshal([]byte(stdout), &v) != nil || v["gavel_version"] == "" || v["goja_version"] == "" {
		t.Errorf("gavel version --json: exit %d, %q", code, stdout)
	}
	if code, _, _ := run("version", "extra"); code != exitUsage {
		t.Errorf("gavel version extra: exit %d", code)
	}
}

// TestBashCompletion runs the generated script in a real bash and asks it
// to complete a group and a flag.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is required for this test:", err)
	}
	code, script, _ := run("completion", "bash")
	if code != exitOK {
		t.Fatalf("gavel completion bash: exit %d", code)
	}
	path := filepath.Join(t.TempDir(), "gavel.bash")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) string {
		t.Helper()
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		sh := "source " + path + "; COMP_WORDS=(" + strings.Join(quoted, " ") + "); COMP_CWORD=" +
			itoa(len(words)-1) + "; _gavel; printf '%s\\n' \"${COMPREPLY[@]}\""
		out, err := exec.Command(bash, "-c", sh).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return string(out)
	}
	if got := complete("gavel", "mem"); !strings.Contains(got, "member") {
		t.Errorf("gavel mem<TAB> = %q, want member", got)
	}
	if got := complete("gavel", "audit", "re"); !strings.Contains(got, "replay") {
		t.Errorf("gavel audit re<TAB> = %q, want replay", got)
	}
	if got := complete("gavel", "audit", "replay", "--da"); !strings.Contains(got, "--data") {
		t.Errorf("gavel audit replay --da<TAB> = %q, want --data", got)
	}
	if code, _, _ := run("completion", "fish"); code != exitUsage {
		t.Errorf("gavel completion fish: exit %d", code)
	}
	if code, zsh, _ := run("completion", "zsh"); code != exitOK || !strings.HasPrefix(zsh, "#compdef gavel") {
		t.Errorf("gavel completion zsh: exit %d", code)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestEveryHelpNamesArgumentsAndExample: every registered command's -h is
// help (exit 0, on stderr), starts with its usage line, names the
// positional arguments it takes and shows an example of the command.
func TestEveryHelpNamesArgumentsAndExample(t *testing.T) {
	positional := map[string][]string{
		"serve":                  nil,
		"version":                nil,
		"completion":             {"bash|zsh"},
		"statement issuer":       nil,
		"statement sign":         {"PAYLOAD"},
		"statement register":     {"STATEMENT"},
		"receipt":                nil,
		"audit verify-receipt":   {"RECEIPT"},
		"audit verify-statement": {"TRANSPARENT_STATEMENT"},
		"audit replay":           nil,
		"member keygen":          nil,
		"member proposal":        {"ACTION"},
		"member propose":         {"PROPOSAL.json|-"},
		"member vote":            nil,
		"member withdraw":        nil,
		"member proposals":       nil,
		"member ack":             nil,
		"member sign":            {"[PAYLOAD]"},
		"bench commit":           nil,
		"bench gov":              nil,
		"bench replay":           nil,
		"bench failover":         nil,
		"node stepdown":          nil,
		"bench scale":            nil,
		"bench replicated":       nil,
		"dev snp-signer":         nil,
		"node keygen":            nil,
		"node join":              nil,
		"node status":            nil,
		"node delete":            nil,
		"nodes":                  nil,
		"projections rebuild":    nil,
		"demo code-upgrade":      nil,
		"node run":               nil,
		"node updates":           nil,
		"node accept":            {"HASH"},
		"bootstrap":              nil,
		"demo parameters":        nil,
		"demo live-upgrade":      nil,
		"bench map":              nil,
	}
	for name := range commands {
		t.Run(name, func(t *testing.T) {
			args, known := positional[name]
			if !known {
				t.Fatalf("gavel %s is not in this table: add the positional arguments its -h must name", name)
			}
			code, stdout, stderr := run(append(strings.Fields(name), "-h")...)
			if code != exitOK || stdout != "" {
				t.Fatalf("-h: exit %d, stdout %q", code, stdout)
			}
			usage, _, _ := strings.Cut(stderr, "\n")
			if !strings.HasPrefix(usage, "usage: gavel "+name) {
				t.Fatalf("-h does not start with its usage line:\n%s", stderr)
			}
			for _, a := range args {
				if !strings.Contains(usage, a) {
					t.Errorf("usage line %q does not name %s", usage, a)
				}
			}
			_, example, ok := strings.Cut(stderr, "example")
			if !ok || !strings.Contains(example, "gavel "+name) {
				t.Errorf("-h shows no example of gavel %s:\n%s", name, stderr)
			}
		})
	}
}

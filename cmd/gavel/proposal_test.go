package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gavelhq/gavel/schemas"
)

// TestMemberProposal generates proposals from the service's own schemas:
// typed values, a file argument, and refusals that name the field. Each
// generated proposal is accepted by the embedded schema the service
// validates with.
func TestMemberProposal(t *testing.T) {
	s := startService(t)
	dir := t.TempDir()
	mustRun(t, "member", "keygen", "--out", dir, "--name", "alice")
	cert := filepath.Join(dir, "alice_cert.pem")
	cfgFile := writeFile(t, dir, "data.json", []byte(`{"role":"auditor"}`))

	for _, tc := range []struct {
		name string
		args []string
		want map[string]any // decoded args
	}{
		{"a file as a string and JSON", []string{"set_member", "--arg-file", "cert=" + cert, "--arg-file", "member_data=" + cfgFile}, nil},
		{"integers typed", []string{"set_service_configuration", "--arg", "max_open_proposals=50", "--arg", "replay_window_seconds=600"},
			map[string]any{"max_open_proposals": float64(50), "replay_window_seconds": float64(600)}},
		{"JSON argument", []string{"set_member", "--arg-file", "cert=" + cert, "--arg-json", `member_data={"a":[1,2]}`}, nil},
		{"empty arguments", []string{"remove_node_join_policy"}, map[string]any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := mustRun(t, append([]string{"member", "proposal", "--url", s.url}, tc.args...)...)
			if err := schemas.ValidateJSON("proposal", []byte(out)); err != nil {
				t.Fatalf("%s: %v", out, err)
			}
			var p struct {
				Actions []struct {
					Name string         `json:"name"`
					Args map[string]any `json:"args"`
				} `json:"actions"`
			}
			if err := json.Unmarshal([]byte(out), &p); err != nil || len(p.Actions) != 1 || p.Actions[0].Name != tc.args[0] {
				t.Fatalf("%s: %v", out, err)
			}
			b, _ := json.Marshal(p.Actions[0].Args)
			if err := schemas.ValidateJSON("actions/"+tc.args[0], b); err != nil {
				t.Fatalf("the service's schema refuses %s: %v", b, err)
			}
			if tc.want != nil {
				want, _ := json.Marshal(tc.want)
				if string(b) != string(want) {
					t.Fatalf("args %s, want %s", b, want)
				}
			}
		})
	}

	for _, tc := range []struct {
		name  string
		args  []string
		names string // what stderr must name
	}{
		{"unknown action", []string{"frobnicate"}, `unknown action "frobnicate"`},
		{"not an action name", []string{"../ballot"}, "not an action name"},
		{"missing required", []string{"set_member"}, "cert"},
		{"unknown argument", []string{"set_member", "--arg-file", "cert=" + cert, "--arg", "colour=blue"}, "colour"},
		{"not a number", []string{"set_service_configuration", "--arg", "max_open_proposals=many"}, "max_open_proposals"},
		{"out of range", []string{"set_service_configuration", "--arg", "max_open_proposals=0"}, "/max_open_proposals"},
		{"not JSON", []string{"set_member", "--arg-file", "cert=" + cert, "--arg-json", "member_data={"}, "member_data"},
		{"pattern", []string{"set_member", "--arg", "cert=hello"}, "/cert"},
		{"twice", []string{"set_service_configuration", "--arg", "max_open_proposals=1", "--arg", "max_open_proposals=2"}, "twice"},
		{"no action", nil, "ACTION"},
		{"two actions", []string{"set_member", "remove_member"}, "ACTION"},
		{"not k=v", []string{"set_member", "--arg", "cert"}, "KEY=VALUE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(append([]string{"member", "proposal", "--url", s.url}, tc.args...)...)
			if code != exitUsage || out != "" || !strings.Contains(errOut, tc.names) || !strings.Contains(errOut, "usage") {
				t.Fatalf("exit %d, stdout %q, stderr %q; want usage naming %q", code, out, errOut, tc.names)
			}
		})
	}
}

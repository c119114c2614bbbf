package nodeagent_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gavelhq/gavel/engine/nodes"
	"github.com/gavelhq/gavel/nodeagent"
)

func write(t *testing.T, dir, name, body string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const hd = "1111111111111111111111111111111111111111111111111111111111111111"

func TestRequestFromConfig(t *testing.T) {
	dir := t.TempDir()
	id, err := nodeagent.Keygen(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := nodeagent.LoadKey(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "ts.cose", "statement bytes")
	// CCF's newer field name, relative to the config's folder.
	cfg, base, err := nodeagent.LoadConfig(write(t, dir, "node.json", `{"role":"service","address":"h:1","code_version":"B",
		"attestation":{"format":"virtual","host_data":"`+hd+`","measurement":"aa"},"code_transparent_statement_path":"ts.cose","node_data":{"x":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := nodeagent.Request(cfg, base, key)
	if err != nil {
		t.Fatal(err)
	}
	j, err := nodes.ParseJoin(raw)
	if err != nil || j.NodeID != id || string(j.Request.TransparentStatement) != "statement bytes" || j.Request.Role != "service" || string(j.Request.NodeData) != `{"x":1}` {
		t.Fatalf("request %+v %v", j, err)
	}
}

func TestConfigRefusals(t *testing.T) {
	dir := t.TempDir()
	if _, err := nodeagent.Keygen(dir); err != nil {
		t.Fatal(err)
	}
	key, _ := nodeagent.LoadKey(dir)
	if _, _, err := nodeagent.LoadConfig(write(t, dir, "typo.json", `{"role":"service","adress":"h:1"}`)); !errors.Is(err, nodeagent.ErrConfig) {
		t.Fatalf("unknown field: %v", err)
	}
	for name, att := range map[string]string{
		"format":      `{"format":"sgx"}`,
		"host data":   `{"format":"virtual","host_data":"11","measurement":"aa"}`,
		"measurement": `{"format":"sev-snp","dev_signer":"x","host_data":"` + hd + `","measurement":"aa"}`,
	} {
		cfg, base, err := nodeagent.LoadConfig(write(t, dir, "c.json", `{"role":"service","address":"h:1","attestation":`+att+`}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nodeagent.Request(cfg, base, key); !errors.Is(err, nodeagent.ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	cfg, base, _ := nodeagent.LoadConfig(write(t, dir, "c.json", `{"role":"service","address":"h:1","attestation":{"format":"sev-snp","report":"missing.bin","endorsements":"e.pem"}}`))
	if _, err := nodeagent.Request(cfg, base, key); err == nil || !strings.Contains(err.Error(), "report") {
		t.Fatalf("missing report: %v", err)
	}
}

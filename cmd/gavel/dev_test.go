package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/attest"
	"github.com/gavelhq/gavel/engine/attest/devsnp"
)

// TestDevSNPSigner: the command makes a fresh chain whose reports verify on
// the real SNP path once its ARK is trusted, and only then.
func TestDevSNPSigner(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "snp")
	code, stdout, stderr := run("dev", "snp-signer", "--out", dir, "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var summary struct {
		ARK   string `json:"ark"`
		CPUID string `json:"cpuid"`
	}
	if err := json.Unmarshal([]byte(stdout), &summary); err != nil || summary.CPUID != devsnp.CPUID {
		t.Fatalf("summary %q: %v", stdout, err)
	}
	root, err := devsnp.LoadRoot(summary.ARK)
	if err != nil {
		t.Fatal(err)
	}
	node, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(node.Public())
	m := [48]byte{9}
	e, err := devsnp.SignReport(dir, [32]byte{7}, m, attest.ReportDataFor(der))
	if err != nil {
		t.Fatal(err)
	}
	p := attest.Policy{
		Roots:           []*x509.Certificate{root},
		SNPMeasurements: map[string]bool{hex.EncodeToString(m[:]): true},
		MinimumTCB:      map[string]attest.TCB{devsnp.CPUID: devsnp.TCBVersion},
	}
	if _, err := attest.Verify(e, p, der, time.Now()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	p.Roots = nil
	if _, err := attest.Verify(e, p, der, time.Now()); !errors.Is(err, attest.ErrUntrustedRoot) {
		t.Fatalf("without the root: %v", err)
	}
	if code, _, _ := run("dev", "snp-signer"); code != exitUsage {
		t.Fatalf("without --out: exit %d", code)
	}
}

// TestBinaryDoesNotLinkTesting: the gavel binary's dependencies include
// neither Go's testing package nor go-sev-guest's test signer and fake KDS
// (the development SNP chain is gavel's own, engine/attest/devsnp).
func TestBinaryDoesNotLinkTesting(t *testing.T) {
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "list", "-deps", ".")
	// Offline: the module cache already holds everything the build needs.
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 {
		t.Fatalf("go list -deps listed %d packages", len(deps))
	}
	for _, d := range deps {
		if d == "testing" || strings.HasPrefix(d, "testing/") || strings.HasPrefix(d, "github.com/google/go-sev-guest/testing") {
			t.Errorf("the gavel binary depends on %s", d)
		}
	}
}

package devsnp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	sevtest "github.com/google/go-sev-guest/testing"

	"github.com/gavelhq/gavel/engine/attest"
	"github.com/gavelhq/gavel/engine/attest/devsnp"
)

// testKeys are go-sev-guest's fixed test keys for the ARK and ASK (fresh
// RSA-4096 keys take seconds; the CLI's test makes them) and a fresh VCEK.
func testKeys(t *testing.T) devsnp.Keys {
	t.Helper()
	vcek, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return devsnp.Keys{ARK: sevtest.DefaultArk(), ASK: sevtest.DefaultAsk(), VCEK: vcek}
}

// TestRoundTrip: a chain Create writes, a report SignReport makes from it,
// verifies through package attest with the development ARK as a trusted
// root, binding the node's key, and is refused without that root.
func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "snp")
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if _, err := devsnp.Write(dir, testKeys(t), now); err != nil {
		t.Fatalf("Write: %v", err)
	}
	for _, f := range []string{devsnp.ARKFile, devsnp.ASKFile, devsnp.VCEKFile, devsnp.VCEKKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, devsnp.VCEKKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	nodeKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(nodeKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	hostData := [32]byte{1, 2, 3}
	measurement := [48]byte{4, 5, 6}
	e, err := devsnp.SignReport(dir, hostData, measurement, attest.ReportDataFor(der))
	if err != nil {
		t.Fatalf("SignReport: %v", err)
	}
	root, err := devsnp.LoadRoot(filepath.Join(dir, devsnp.ARKFile))
	if err != nil {
		t.Fatal(err)
	}
	p := attest.Policy{
		Roots:           []*x509.Certificate{root},
		SNPMeasurements: map[string]bool{hex.EncodeToString(measurement[:]): true},
		MinimumTCB:      map[string]attest.TCB{devsnp.CPUID: devsnp.TCBVersion},
	}
	v, err := attest.Verify(e, p, der, now)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if v.HostData != hostData || v.Debug {
		t.Fatalf("verified %+v", v)
	}
	p.Roots = nil
	if _, err := attest.Verify(e, p, der, now); !errors.Is(err, attest.ErrUntrustedRoot) {
		t.Fatalf("without the development root: %v, want %v", err, attest.ErrUntrustedRoot)
	}
}

func TestLoadRefusesAMismatchedKey(t *testing.T) {
	dir := t.TempDir()
	keys := testKeys(t)
	if _, err := devsnp.Write(dir, keys, time.Now()); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	var err error
	if keys.VCEK, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, err := devsnp.Write(other, keys, time.Now()); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(other, devsnp.VCEKKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, devsnp.VCEKKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := devsnp.Load(dir); err == nil {
		t.Fatal("Load accepted another chain's VCEK key")
	}
}

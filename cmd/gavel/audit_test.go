package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/gavelhq/gavel/engine/receipt"
	"github.com/gavelhq/gavel/engine/replica"
)

// The field check: a transparent statement issued by an Azure CCF service,
// which no one on the project wrote.
const (
	fieldDir       = "../../testdata/field"
	fieldStatement = fieldDir + "/azure-uvm-0.2.10.transparent-statement.cose"
	fieldParams    = fieldDir + "/azure-uvm-0.2.10.service-parameters.json"
)

func fieldFiles(t *testing.T) (statement []byte) {
	t.Helper()
	b, err := os.ReadFile(fieldStatement)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyFieldStatement(t *testing.T) {
	fieldFiles(t)
	code, out, errOut := run("audit", "verify-statement", "--service-params", fieldParams, fieldStatement)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var sum struct {
		Verified     bool   `json:"verified"`
		Issuer       string `json:"issuer"`
		ClaimsDigest string `json:"claims_digest"`
		Receipts     []struct {
			TxID string `json:"txid"`
			Root string `json:"root"`
		} `json:"receipts"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !sum.Verified || !strings.HasPrefix(sum.Issuer, "did:x509:") || len(sum.ClaimsDigest) != 64 ||
		len(sum.Receipts) == 0 || sum.Receipts[0].TxID == "" || len(sum.Receipts[0].Root) != 64 {
		t.Fatalf("summary %+v", sum)
	}
	// Flags after the file are accepted too.
	if code, _, errOut := run("audit", "verify-statement", fieldStatement, "--service-params", fieldParams); code != exitOK {
		t.Fatalf("flags after the file: exit %d: %s", code, errOut)
	}
}

// TestVerifyFieldStatementTampered flips single bytes in the statement's
// signature and in its receipt's signature and inclusion proof: each must
// fail verification, with the reason on stderr.
func TestVerifyFieldStatementTampered(t *testing.T) {
	ts := fieldFiles(t)
	dir := t.TempDir()
	for name, off := range tamperOffsets(t, ts) {
		t.Run(name, func(t *testing.T) {
			bad := bytes.Clone(ts)
			bad[off] ^= 0x01
			p := writeFile(t, dir, name+".cose", bad)
			code, out, errOut := run("audit", "verify-statement", "--service-params", fieldParams, p)
			t.Logf("stderr: %s", strings.TrimSpace(errOut))
			if code != exitFailed || !strings.Contains(errOut, "not verified") {
				t.Fatalf("byte %d flipped: exit %d, stdout %q, stderr %q", off, code, out, errOut)
			}
			if out != "" {
				t.Fatalf("a failure printed a result: %q", out)
			}
		})
	}
}

// tamperOffsets locates, inside a transparent statement, bytes whose change
// leaves the structure parseable but the cryptography broken.
func tamperOffsets(t *testing.T, ts []byte) map[string]int {
	t.Helper()
	var msg cbor.Tag
	if err := cbor.Unmarshal(ts, &msg); err != nil || msg.Number != 18 {
		t.Fatalf("not a COSE_Sign1: %v", err)
	}
	arr, ok := msg.Content.([]any)
	if !ok || len(arr) != 4 {
		t.Fatal("COSE_Sign1 is not a 4-array")
	}
	sig, _ := arr[3].([]byte)
	if len(sig) == 0 || !bytes.HasSuffix(ts, sig) {
		t.Fatal("the statement's signature is not its last bytes")
	}
	rcpts, err := receipt.Receipts(ts)
	if err != nil || len(rcpts) == 0 {
		t.Fatalf("no receipts: %v", err)
	}
	rOff := bytes.Index(ts, rcpts[0])
	r, err := receipt.Parse(rcpts[0])
	if err != nil || rOff < 0 {
		t.Fatalf("receipt: %v", err)
	}
	offsets := map[string]int{
		"statement signature first byte": len(ts) - len(sig),
		"statement signature last byte":  len(ts) - 1,
		"receipt signature first byte":   rOff + len(rcpts[0]) - len(r.Signature),
		"receipt signature last byte":    rOff + len(rcpts[0]) - 1,
	}
	if len(r.Path) == 0 {
		t.Fatal("the field receipt has an empty inclusion path")
	}
	if i := bytes.Index(rcpts[0], r.Path[0].Hash[:]); i >= 0 {
		offsets["receipt proof path hash"] = rOff + i + 7
	} else {
		t.Fatal("path hash not found in the receipt")
	}
	if i := bytes.Index(rcpts[0], r.Leaf.WriteSetDigest[:]); i >= 0 {
		offsets["receipt proof write set digest"] = rOff + i
	} else {
		t.Fatal("write set digest not found in the receipt")
	}
	if i := bytes.Index(rcpts[0], []byte(r.Leaf.CommitEvidence)); i >= 0 {
		// Inside the nonce's hex, so the evidence still parses.
		offsets["receipt commit evidence"] = rOff + i + len(r.Leaf.CommitEvidence) - 1
	} else {
		t.Fatal("commit evidence not found in the receipt")
	}
	return offsets
}

// TestVerifyRejectsBadFiles feeds files that are not what the commands
// expect: each exits 1 and says why.
func TestVerifyRejectsBadFiles(t *testing.T) {
	ts := fieldFiles(t)
	dir := t.TempDir()
	empty := writeFile(t, dir, "empty", nil)
	text := writeFile(t, dir, "text", []byte("hello, world\n"))
	cborMap := writeFile(t, dir, "map.cbor", []byte{0xa1, 0x01, 0x02})
	truncated := writeFile(t, dir, "truncated.cose", ts[:len(ts)/2])
	missing := filepath.Join(dir, "missing")
	params := writeFile(t, dir, "params.json", []byte(`{"not":"parameters"}`))
	rcpts, err := receipt.Receipts(ts)
	if err != nil {
		t.Fatal(err)
	}
	fieldReceipt := writeFile(t, dir, "field.receipt", rcpts[0])
	// A PEM file with no certificate in it.
	notCert := writeFile(t, dir, "not-cert.pem", []byte("-----BEGIN NOTHING-----\nAAAA\n-----END NOTHING-----\n"))

	for _, tc := range []struct {
		name string
		args []string
		why  string // a fragment of the reason on stderr
	}{
		{"statement: empty file", []string{"audit", "verify-statement", "--service-params", fieldParams, empty}, "empty"},
		{"statement: not COSE", []string{"audit", "verify-statement", "--service-params", fieldParams, text}, "not verified"},
		{"statement: a CBOR map", []string{"audit", "verify-statement", "--service-params", fieldParams, cborMap}, "not verified"},
		{"statement: truncated", []string{"audit", "verify-statement", "--service-params", fieldParams, truncated}, "not verified"},
		{"statement: missing file", []string{"audit", "verify-statement", "--service-params", fieldParams, missing}, "missing"},
		{"statement: bad parameters", []string{"audit", "verify-statement", "--service-params", params, fieldStatement}, "gavel:"},
		{"statement: parameters not JSON", []string{"audit", "verify-statement", "--service-params", text, fieldStatement}, "gavel:"},
		{"statement: cert file without cert", []string{"audit", "verify-statement", "--service-cert", notCert, fieldStatement}, "gavel:"},
		{"receipt: cert file without cert", []string{"audit", "verify-receipt", "--service-cert", notCert, fieldReceipt}, "gavel:"},
		{"receipt: empty file", []string{"audit", "verify-receipt", "--service-cert", writeServiceCert(t, dir), empty}, "empty"},
		{"receipt: not COSE", []string{"audit", "verify-receipt", "--service-cert", writeServiceCert(t, dir), text}, "not verified"},
		{"receipt: a CBOR map", []string{"audit", "verify-receipt", "--service-cert", writeServiceCert(t, dir), cborMap}, "not verified"},
		{"receipt: a statement, not a receipt", []string{"audit", "verify-receipt", "--service-cert", writeServiceCert(t, dir), fieldStatement}, "not verified"},
		{"receipt: signed by another service", []string{"audit", "verify-receipt", "--service-cert", writeServiceCert(t, dir), fieldReceipt}, "not a key of this service"},
		{"receipt: statement file empty", []string{"audit", "verify-receipt", "--service-cert", writeServiceCert(t, dir), fieldReceipt, "--statement", empty}, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(tc.args...)
			t.Logf("stderr: %s", strings.TrimSpace(errOut))
			if code != exitFailed || !strings.Contains(errOut, tc.why) {
				t.Fatalf("exit %d, stderr %q (want 1 and %q)", code, errOut, tc.why)
			}
			if out != "" {
				t.Fatalf("a failure printed a result: %q", out)
			}
		})
	}
}

// writeServiceCert writes a fresh, unrelated service certificate.
func writeServiceCert(t *testing.T, dir string) string {
	t.Helper()
	id, err := replica.LoadOrCreateIdentity(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := id.CertPEM
	f, err := os.CreateTemp(dir, "service-*.pem")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(pemBytes); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

package cose

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/didx509"
)

const fieldStatement = "../../testdata/field/azure-uvm-0.2.10.transparent-statement.cose"

func loadFieldStatement(t testing.TB) []byte {
	t.Helper()
	raw, err := os.ReadFile(fieldStatement)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// The Azure statement: PS384 over an RSA chain, did:x509 eku issuer, valid
// at its iat although its leaf has since expired.
func TestFieldStatement(t *testing.T) {
	raw := loadFieldStatement(t)
	m, err := DecodeSign1(raw)
	if err != nil {
		t.Fatal(err)
	}
	again, err := m.Encode()
	if err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("decode/encode does not reproduce the field bytes: %v", err)
	}
	st, err := ParseStatement(raw)
	if err != nil {
		t.Fatal(err)
	}
	later := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := VerifyStatement(st, later); err != nil {
		t.Fatalf("VerifyStatement: %v", err)
	}
	if st.Chain[0].NotAfter.After(later) {
		t.Fatal("the field leaf should have expired by 2027")
	}
	if _, err := didx509.Resolve(st.Issuer, st.Chain, later); !errors.Is(err, didx509.ErrChain) {
		t.Fatalf("resolving at a time past the leaf's expiry = %v, want ErrChain", err)
	}
	if _, ok := st.ProtectedHeader.Get(LabelX5T); !ok {
		t.Error("x5t header not kept")
	}
}

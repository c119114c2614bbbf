package joinproof_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/joinproof"
	"github.com/gavelhq/gavel/engine/receipt"
)

// testdata/field is a real transparent statement issued by an Azure CCF
// (SCITT) service and the service's published certificates, copied from
// shared/testdata/field (MIT, Microsoft: LICENSE.scitt-ccf-ledger.txt).
func loadField(t testing.TB) ([]byte, receipt.KeySet) {
	t.Helper()
	ts, err := os.ReadFile(filepath.Join("testdata", "field", "azure-uvm-0.2.10.transparent-statement.cose"))
	if err != nil {
		t.Fatal(err)
	}
	params, err := os.ReadFile(filepath.Join("testdata", "field", "azure-uvm-0.2.10.service-parameters.json"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := receipt.ParseServiceParameters(params)
	if err != nil {
		t.Fatal(err)
	}
	return ts, keys
}

// fieldNow is after the statement's x5chain expired: the chain is judged at
// the statement's iat, as CCF does.
var fieldNow = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

// TestFieldStatement: the Azure statement passes every structural check
// with its own payload as the host data. (Its payload is the 48-byte UVM
// measurement, not 32-byte host data: a join would refuse it by size.)
func TestFieldStatement(t *testing.T) {
	ts, keys := loadField(t)
	st, err := cose.ParseStatement(ts)
	if err != nil {
		t.Fatal(err)
	}
	v, err := joinproof.Validate(ts, st.Payload, keys, fieldNow)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	in := v.Input
	if in.Phdr.Alg != int64(cose.PS384) || len(in.Phdr.X5Chain) != 3 ||
		in.Phdr.CWT.Iss != "did:x509:0:sha256:I__iuL25oXEVFdTP_aBLx_eT1RPHbCQ_ECBQfYZpt9s::eku:1.3.6.1.4.1.311.76.59.1.2" ||
		in.Phdr.CWT.Sub != "ContainerPlat-AMD-UVM" || *in.Phdr.CWT.Iat != 1766437887 || *in.Phdr.CWT.Svn != 104 {
		t.Fatalf("phdr input %+v", in.Phdr)
	}
	if len(in.Receipts) != 1 {
		t.Fatalf("%d receipts", len(in.Receipts))
	}
	r := in.Receipts[0]
	if r.Alg != int64(cose.ES384) || r.Vds != 2 || r.Kid != "da7694f16def5a056ca96afb21e89a9450e4cc875e2de351da76d99544a3e849" ||
		r.CCF.TxID != "458.12441" || r.CWT.Iss != "esrp-cts-db.confidential-ledger.azure.com" || r.CWT.Sub != "scitt.ccf.signature.v1" ||
		*r.CWT.Iat != 1766437888 || len(r.Leaves) != 1 ||
		r.Leaves[0].ClaimsDigest != "a60138fb1591fe6c433b41128b0349cf3636bce74fc8c2e7140bc13b74612649" {
		t.Fatalf("receipt input %+v", r)
	}
	if _, err := joinproof.Validate(ts, make([]byte, 32), keys, fieldNow); !errors.Is(err, joinproof.ErrPayloadSize) {
		t.Fatalf("with 32-byte host data: %v, want %v", err, joinproof.ErrPayloadSize)
	}
}

// TestFieldStatementTampered: every byte of the receipt's inclusion proof
// and signature matters.
func TestFieldStatementTampered(t *testing.T) {
	ts, keys := loadField(t)
	st, err := cose.ParseStatement(ts)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := receipt.Receipts(ts)
	if err != nil || len(rs) != 1 {
		t.Fatal(err)
	}
	m, err := cose.DecodeSign1(rs[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Signature {
		bad := *m
		bad.Signature = append([]byte(nil), m.Signature...)
		bad.Signature[i] ^= 0x01
		raw, err := bad.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := joinproof.Validate(embed(t, ts, raw), st.Payload, keys, fieldNow); !errors.Is(err, joinproof.ErrReceiptProof) {
			t.Fatalf("receipt signature byte %d flipped: %v", i, err)
		}
	}
	// The path is the last part of the receipt: flip each hash byte there.
	r, err := receipt.Parse(rs[0])
	if err != nil {
		t.Fatal(err)
	}
	sig := *m
	sig.Unprotected = nil
	sigRaw, err := sig.Encode()
	if err != nil {
		t.Fatal(err)
	}
	rebuilt, err := receipt.Build(sigRaw, r.Leaf, r.Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := joinproof.Validate(embed(t, ts, rebuilt), st.Payload, keys, fieldNow); err != nil {
		t.Fatalf("the rebuilt receipt: %v", err)
	}
	for j := range r.Path {
		for k := 0; k < 32; k++ {
			path := append([]receipt.PathElem(nil), r.Path...)
			path[j].Hash[k] ^= 0x80
			raw, err := receipt.Build(sigRaw, r.Leaf, path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := joinproof.Validate(embed(t, ts, raw), st.Payload, keys, fieldNow); !errors.Is(err, joinproof.ErrReceiptProof) {
				t.Fatalf("path %d byte %d flipped: %v", j, k, err)
			}
		}
	}
}

package receipt

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
)

func FuzzVerifyReceipt(f *testing.F) {
	svc := fixedService(f)
	leaves, hashes, root := tree(6, nil)
	sig, err := svc.SignRoot(root, engine.TxID{View: 2, Seqno: 16}, testNow, "gavel", "sig")
	if err != nil {
		f.Fatal(err)
	}
	for _, i := range []int{0, 5} {
		rc, err := Build(sig, leaves[i], naivePath(hashes, i))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rc)
	}
	// The Azure receipt.
	ts, err := os.ReadFile(filepath.Join(fieldDir, "azure-uvm-0.2.10.transparent-statement.cose"))
	if err != nil {
		f.Fatal(err)
	}
	rs, err := Receipts(ts)
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range rs {
		f.Add(r)
	}
	key := svc.Public()
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, perr := Parse(raw)
		v, verr := Verify(raw, key)
		if perr != nil {
			if verr == nil || engine.KindOf(perr) != engine.KindInvalid {
				t.Fatalf("Parse = %v but Verify = %v", perr, verr)
			}
			return
		}
		// Rebuilding from the parsed parts gives the same receipt content.
		entry, err := (&cose.Sign1{Protected: r.Protected, Signature: r.Signature}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		rebuilt, err := Build(entry, r.Leaf, r.Path)
		if err != nil {
			t.Fatalf("Build from a parsed receipt: %v", err)
		}
		r2, err := Parse(rebuilt)
		if err != nil || r2.Leaf != r.Leaf || r2.TxID != r.TxID || r2.ProvenRoot() != r.ProvenRoot() || len(r2.Path) != len(r.Path) {
			t.Fatalf("rebuilt receipt differs: %v", err)
		}
		if verr != nil {
			if c := engine.AsError(verr).Code; c != cose.CodeInvalidSignature && c != CodeUnknownServiceKey && c != cose.CodeUnsupportedAlgorithm {
				t.Fatalf("Verify error %v", verr)
			}
			return
		}
		if v.Root != r.ProvenRoot() || v.TxID != r.TxID {
			t.Fatal("verified receipt differs from the parsed one")
		}
	})
}

// FuzzVerifySignatureReceipt: whatever the bytes, a signature receipt
// either verifies over the root it carries, or is refused with a typed
// error; it never panics.
func FuzzVerifySignatureReceipt(f *testing.F) {
	svc := fixedService(f)
	root := digestOf("root")
	sig, err := svc.SignRoot(root, engine.TxID{View: 2, Seqno: 16}, testNow, "gavel", "sig")
	if err != nil {
		f.Fatal(err)
	}
	rc, err := BuildSignatureReceipt(sig, root)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rc)
	f.Add(sig)
	key := svc.Public()
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, err := VerifySignatureReceipt(raw, key)
		if err != nil {
			if engine.KindOf(err) != engine.KindInvalid {
				t.Fatalf("untyped refusal: %v", err)
			}
			return
		}
		if _, err := VerifySignature(mustDetach(t, raw), v.Root, key); err != nil {
			t.Fatalf("verified, but its signature does not verify over its root: %v", err)
		}
	})
}

func mustDetach(t *testing.T, raw []byte) []byte {
	m, err := cose.DecodeSign1(raw)
	if err != nil {
		t.Fatal(err)
	}
	m.Payload = nil
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package receipt

import (
	"crypto/elliptic"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
)

func TestVerifySignatureEntry(t *testing.T) {
	svc, other := newService(t, elliptic.P384()), newService(t, elliptic.P384())
	root := digestOf("root")
	tx := engine.TxID{View: 4, Seqno: 100}
	sig, err := svc.SignRoot(root, tx, testNow, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := VerifySignature(sig, root, svc.Public()); err != nil || got != tx {
		t.Fatalf("VerifySignature = %v, %v", got, err)
	}
	if _, err := VerifySignature(sig, digestOf("other root"), svc.Public()); codeOf(err) != cose.CodeInvalidSignature {
		t.Errorf("other root: %v", err)
	}
	if _, err := VerifySignature(sig, root, other.Public()); codeOf(err) != CodeUnknownServiceKey {
		t.Errorf("other key: %v", err)
	}
	leaves, hashes, _ := tree(2, nil)
	rc, _ := Build(sig, leaves[0], naivePath(hashes, 0))
	if _, err := VerifySignature(rc, root, svc.Public()); err != nil {
		t.Errorf("a receipt is a signature with proofs added: %v", err)
	}
	if _, err := VerifySignature([]byte("x"), root, svc.Public()); codeOf(err) != CodeInvalidReceipt {
		t.Errorf("garbage: %v", err)
	}
}

// TestSignatureReceipt: a signature entry's receipt is its signature with
// the root attached; it verifies against the service key only, and only
// over that root.
func TestSignatureReceipt(t *testing.T) {
	svc, other := newService(t, elliptic.P256()), newService(t, elliptic.P256())
	root := digestOf("root")
	tx := engine.TxID{View: 2, Seqno: 41}
	sig, err := svc.SignRoot(root, tx, testNow, "", "")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := BuildSignatureReceipt(sig, root)
	if err != nil {
		t.Fatal(err)
	}
	if !IsSignatureReceipt(rc) || IsSignatureReceipt(sig) {
		t.Fatal("IsSignatureReceipt does not tell the two apart")
	}
	v, err := VerifySignatureReceipt(rc, svc.Public())
	if err != nil || v.TxID != tx || v.Root != root {
		t.Fatalf("VerifySignatureReceipt = %+v, %v", v, err)
	}
	if _, err := VerifySignatureReceipt(rc, other.Public()); codeOf(err) != CodeUnknownServiceKey {
		t.Errorf("other key: %v", err)
	}
	forged, _ := BuildSignatureReceipt(sig, digestOf("other root"))
	if _, err := VerifySignatureReceipt(forged, svc.Public()); codeOf(err) != cose.CodeInvalidSignature {
		t.Errorf("another root attached: %v", err)
	}
	// An inclusion receipt is not a signature receipt, and Parse refuses
	// a signature receipt as an inclusion receipt.
	leaves, hashes, _ := tree(2, nil)
	inc, _ := Build(sig, leaves[0], naivePath(hashes, 0))
	if _, err := VerifySignatureReceipt(inc, svc.Public()); codeOf(err) != CodeInvalidReceipt {
		t.Errorf("an inclusion receipt: %v", err)
	}
	if _, err := Parse(rc); codeOf(err) != CodeInvalidReceipt {
		t.Errorf("Parse of a signature receipt: %v", err)
	}
	if _, err := BuildSignatureReceipt(rc, root); codeOf(err) != CodeInvalidReceipt {
		t.Errorf("a receipt of a receipt: %v", err)
	}
}

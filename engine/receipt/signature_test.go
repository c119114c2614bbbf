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

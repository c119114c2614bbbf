package merkle

import (
	"crypto/ecdsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"slices"
	"testing"

	"github.com/gavelhq/gavel/engine"
)

// A receipt issued by a real Azure CCF service (esrp-cts-db.confidential-ledger
// .azure.com), copied from testdata/field/azure-uvm-0.2.10
// .transparent-statement.cose (MIT, see LICENSE.scitt-ccf-ledger.txt there):
// the leaf of entry 458.12440 and its path under the signature entry at
// 458.12441, the signature's protected header and ES384 signature, and the
// public key of the service certificate that made it (the fifth in the
// .service-parameters.json beside it).
var azure = struct {
	writeSetDigest, claimsDigest string
	commitEvidence               string
	path                         []string // every step is Left
	protected, signature, spki   string
	leafSeqno, signatureSeqno    uint64
}{
	writeSetDigest: "4f6d256624f31df6055daaaefa163151f3bb67a13d91b6fd1b9d6267c7f7e374",
	commitEvidence: "ce:458.12440:858e0a6db787c523ac940e640a781efcd0635a5e22bdf186d46acef29759f4c1",
	claimsDigest:   "a60138fb1591fe6c433b41128b0349cf3636bce74fc8c2e7140bc13b74612649",
	path: []string{
		"dcca11d1f7ce42c6ad444b4f0a0dce80b124e4d9a47682482af97217aa3ef831",
		"12fb1e0f8338dc879bb9116d02cca298720c6e6176cda541a397a478631e1f4b",
		"d46352a126444db8020cf2228069f82ee62adab33b846e0191c87bb899cd0d16",
		"d5d733f6382f6eb01156411ea596b9a046d261e7bc31effe80b7c588264d1fa2",
		"3c408c50424c65137e89dbaaf0d4fc6edc0f8b65c076fb308bd046fe7f259d39",
	},
	protected:      "a50138220458406461373639346631366465663561303536636139366166623231653839613934353065346363383735653264653335316461373664393935343461336538343919018b020fa3061a6949b400017829657372702d6374732d64622e636f6e666964656e7469616c2d6c65646765722e617a7572652e636f6d027673636974742e6363662e7369676e61747572652e7631666363662e7631a16474786964693435382e3132343431",
	signature:      "44e2022692f30acce3c2c9ad73bb75e828d37ca26cfd15ceca873b055aeb8375078f0bc830e87cb7a6876eb2d6ea10b20909b922550c8972fcaa35e64a1fd60696f59a7f8d20806f928d67db2e9815831cd43888d5d150e2e5c962ab3bedfbcb",
	spki:           "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEGeQ/qA3ZxYoaan3D0nA7xriMcmiMqQ0UNY1DLs7C5kIEaI/RL/2duRcG1Ii6g+8+uKiRr4UU8aXumcA8wu6LOatH0qL2AjFy3/8iBx3mbt1foS5xNHlXchMMLTSCvRLn",
	leafSeqno:      12440,
	signatureSeqno: 12441,
}

func digestHex(t *testing.T, s string) engine.Digest {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("bad digest %q", s)
	}
	return engine.Digest(b)
}

// ComputeRoot over the Azure receipt yields the root Azure's service key
// signed: CCF's hashing, as this package does it, agrees with CCF's.
func TestAzureReceiptRootIsSignedByService(t *testing.T) {
	leaf := engine.LeafHash(digestHex(t, azure.writeSetDigest), azure.commitEvidence, digestHex(t, azure.claimsDigest))
	var path []PathElem
	for _, h := range azure.path {
		path = append(path, PathElem{Left: true, Hash: digestHex(t, h)})
	}
	root := ComputeRoot(leaf, path)

	protected, _ := hex.DecodeString(azure.protected)
	sig, _ := hex.DecodeString(azure.signature)
	spki, _ := base64.StdEncoding.DecodeString(azure.spki)
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		t.Fatal(err)
	}
	// COSE Sig_structure with the detached payload = root.
	tbs, err := engine.CBOR.Marshal([]any{"Signature1", protected, []byte{}, root[:]})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha512.Sum384(tbs)
	r, s := new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])
	if !ecdsa.Verify(pub.(*ecdsa.PublicKey), digest[:], r, s) {
		t.Fatalf("Azure's signature does not cover computed root %x", root)
	}
	root[0] ^= 1
	tbs, _ = engine.CBOR.Marshal([]any{"Signature1", protected, []byte{}, root[:]})
	digest = sha512.Sum384(tbs)
	if ecdsa.Verify(pub.(*ecdsa.PublicKey), digest[:], r, s) {
		t.Fatal("signature check accepts any root")
	}
}

// The shape of Azure's path fixes CCF's leaf layout: InclusionPath gives the
// same sides and length with leaf index = seqno in a tree whose size is the
// signature's seqno (CCF's zero leaf at index 0), and not with index =
// seqno-1.
func TestAzureReceiptShapeFixesLeafLayout(t *testing.T) {
	_, nodes := buildTree(testLeaves(int(azure.signatureSeqno)))
	sides := func(index, size uint64) []bool {
		path, err := InclusionPath(nodes, index, size)
		if err != nil {
			t.Fatal(err)
		}
		var out []bool
		for _, p := range path {
			out = append(out, p.Left)
		}
		return out
	}
	want := slices.Repeat([]bool{true}, len(azure.path))
	if got := sides(azure.leafSeqno, azure.signatureSeqno); !slices.Equal(got, want) {
		t.Errorf("index = seqno: sides %v, receipt has %v", got, want)
	}
	if got := sides(azure.leafSeqno-1, azure.signatureSeqno-1); slices.Equal(got, want) {
		t.Errorf("index = seqno-1 also matches the receipt; the layout test proves nothing")
	}
}

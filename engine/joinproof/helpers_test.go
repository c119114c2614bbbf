package joinproof_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/internal/testpki"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/receipt"
)

var (
	now      = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	iat      = now.Add(-time.Hour)
	hostData = sha256.Sum256([]byte("code version B"))
)

// service is a service identity: a P-384 key and its self-signed
// certificate.
type service struct {
	*receipt.Signer
	key crypto.Signer
}

func newService(t testing.TB) *service {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return serviceFromKey(t, key)
}

// fixedService is the P-384 service key under testdata, so that the fuzz
// seeds' receipts stay verifiable across runs.
func fixedService(t testing.TB) *service {
	t.Helper()
	key, err := testpki.ReadKey("testdata/service-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	return serviceFromKey(t, key)
}

func serviceFromKey(t testing.TB, key crypto.Signer) *service {
	t.Helper()
	cert, err := testpki.SelfSigned(key, "CCF Service", now.AddDate(0, -1, 0), now.AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	s, err := receipt.NewSigner(key, cert)
	if err != nil {
		t.Fatal(err)
	}
	return &service{Signer: s, key: key}
}

func keysOf(t testing.TB, signers ...*service) receipt.KeySet {
	t.Helper()
	var keys []crypto.PublicKey
	for _, s := range signers {
		keys = append(keys, s.Public())
	}
	ks, err := receipt.NewKeySet(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// receiptOpts bend a receipt for the failure cases.
type receiptOpts struct {
	claims *engine.Digest // the leaf's claims digest; nil: the statement's
	vds    int64          // 0: 2
	tamper bool           // alter the proof after signing
}

// receiptFor is svc's receipt for statement st: its leaf at index 1 after
// CCF's zero leaf 0, signed in the signature entry that follows.
func receiptFor(t testing.TB, svc *service, st []byte, o receiptOpts) []byte {
	t.Helper()
	cd, err := cose.ClaimsDigest(st)
	if err != nil {
		t.Fatal(err)
	}
	if o.claims != nil {
		cd = *o.claims
	}
	leaf := receipt.Leaf{
		WriteSetDigest: sha256.Sum256([]byte("write set")),
		CommitEvidence: engine.CommitEvidence(engine.TxID{View: 2, Seqno: 1}, sha256.Sum256([]byte("nonce"))),
		ClaimsDigest:   cd,
	}
	path := []receipt.PathElem{{Left: true, Hash: engine.Digest{}}}
	root := receipt.ComputeRoot(leaf, path)
	var sig []byte
	if o.vds == 0 {
		sig, err = svc.SignRoot(root, engine.TxID{View: 2, Seqno: 2}, now, "gavel.test", "ledger.signature")
	} else {
		sig, err = signRoot(svc.key, svc.KeyID(), root, o.vds)
	}
	if err != nil {
		t.Fatal(err)
	}
	if o.tamper {
		path[0].Hash[0] ^= 1
	}
	r, err := receipt.Build(sig, leaf, path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// signRoot signs root as a receipt with another vds.
func signRoot(key crypto.Signer, kid []byte, root engine.Digest, vds int64) ([]byte, error) {
	phdr := map[any]any{
		cose.LabelAlg:       int64(cose.ES384),
		cose.LabelKID:       kid,
		cose.LabelCWTClaims: map[any]any{int64(cose.ClaimIssuedAt): now.Unix()},
		receipt.LabelVDS:    vds,
		receipt.LabelCCF:    map[string]string{"txid": "2.2"},
	}
	protected, err := engine.CBOR.Marshal(phdr)
	if err != nil {
		return nil, err
	}
	sig, err := cose.Sign(key, cose.ES384, protected, root[:])
	if err != nil {
		return nil, err
	}
	return (&cose.Sign1{Protected: protected, Signature: sig}).Encode()
}

// embed puts receipts in header 394 as they are (receipt.Embed would refuse
// the malformed ones); no receipts give an empty array.
func embed(t testing.TB, st []byte, receipts ...[]byte) []byte {
	t.Helper()
	m, err := cose.DecodeSign1(st)
	if err != nil {
		t.Fatal(err)
	}
	if receipts == nil {
		receipts = [][]byte{}
	}
	list, err := engine.CBOR.Marshal(receipts)
	if err != nil {
		t.Fatal(err)
	}
	m.Unprotected = cose.Header{}
	m.Unprotected.Set(cose.LabelReceipts, list)
	ts, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// signHeader signs payload under a protected header built as given, for
// statements the issuer package will not make.
func signHeader(t testing.TB, key crypto.Signer, phdr map[any]any, payload []byte) []byte {
	t.Helper()
	protected, err := engine.CBOR.Marshal(phdr)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := cose.Sign(key, cose.ES256, protected, payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := (&cose.Sign1{Protected: protected, Payload: payload, Signature: sig}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func newIssuer(t testing.TB) *issuer.Issuer {
	t.Helper()
	iss, err := issuer.New("ES256", now.AddDate(0, -1, 0))
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func ders(chain []*x509.Certificate) [][]byte {
	out := make([][]byte, len(chain))
	for i, c := range chain {
		out[i] = c.Raw
	}
	return out
}

package netmap_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/netmap"
)

// mapKeys is a service certificate and a network-map key it issued.
type mapKeys struct {
	service *x509.Certificate
	key     *ecdsa.PrivateKey
	chain   [][]byte
}

func newMapKeys(t testing.TB) mapKeys {
	t.Helper()
	svcKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "service"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	svcDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, svcKey.Public(), svcKey)
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := x509.ParseCertificate(svcDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "map"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, svc, key.Public(), svcKey)
	if err != nil {
		t.Fatal(err)
	}
	return mapKeys{service: svc, key: key, chain: [][]byte{leafDER, svcDER}}
}

// A map signed from the index verifies, carries the index's payload byte
// for byte, and its ETag follows the payload: the same payload signed
// again (another ECDSA signature) keeps it, one publish changes it.
func TestMapSignerSignsTheIndex(t *testing.T) {
	keys := newMapKeys(t)
	signer, err := netmap.NewMapSigner(keys.key, keys.chain)
	if err != nil {
		t.Fatal(err)
	}
	st := genesisState(t, baseParams())
	a, b := newNode(t, "a", "ES256"), newNode(t, "b", "EdDSA")
	for _, n := range []*testNode{a, b} {
		putNode(st, n, netmap.StatusTrusted)
	}
	x, err := netmap.BuildIndex(st, dir(st), t0)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := signer.Sign(x)
	if err != nil {
		t.Fatal(err)
	}
	var etags []string
	for i, n := range []*testNode{a, b} {
		v, err := netmap.VerifyNodeInfo(n.sign(t, n.info(1)), dir(st), netmap.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		eff, err := netmap.Publish{Info: v}.Execute(st, facts(uint64(2+i), t0))
		if err != nil {
			t.Fatal(err)
		}
		st.Apply(eff.Writes)
		if ok, err := x.Apply(st, dir(st), eff.Writes, t0); err != nil || !ok {
			t.Fatalf("publish not folded: %v %v", ok, err)
		}
		m1, err := signer.Sign(x)
		if err != nil {
			t.Fatal(err)
		}
		m2, _ := signer.Sign(x)
		if m1.ETag != m2.ETag || bytes.Equal(m1.Body, m2.Body) {
			t.Fatal("the same payload signed twice: ETags must agree, signatures differ")
		}
		v1, err := netmap.VerifyMap(m1.Body, keys.service)
		if err != nil {
			t.Fatal(err)
		}
		want := x.Payload()
		if !bytes.Equal(mustJSON(t, v1.Payload), want.Encode()) || len(v1.Payload.NodeInfoHashes) != i+1 {
			t.Fatalf("signed payload %+v, index %+v", v1.Payload, want)
		}
		etags = append(etags, m1.ETag)
	}
	if etags[0] == etags[1] || etags[0] == empty.ETag {
		t.Fatalf("ETags do not follow the payload: %v, empty %s", etags, empty.ETag)
	}
	// SignMap over the same bytes is the same construction.
	whole, err := netmap.SignMap(keys.key, keys.chain, x.AppendPayload(nil))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := netmap.VerifyMap(whole, keys.service); err != nil || len(v.Payload.NodeInfoHashes) != 2 {
		t.Fatalf("SignMap: %v %v", v, err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := jsonOf(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

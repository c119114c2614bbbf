package devsnp_test

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	sevtest "github.com/google/go-sev-guest/testing"

	"github.com/gavelhq/gavel/engine/attest/devsnp"
)

// TestChainHasTheShapeOfGoSevGuestsTestSigner: gavel's own chain maker
// gives the certificates go-sev-guest's test signer gives for the same keys
// — names, algorithms, validity, CA flags, key usage, CRL links, and the
// VCEK's KDS extensions byte for byte — but for serial numbers (random).
func TestChainHasTheShapeOfGoSevGuestsTestSigner(t *testing.T) {
	keys := testKeys(t)
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ours, err := devsnp.New(keys, created)
	if err != nil {
		t.Fatal(err)
	}
	b := &sevtest.AmdSignerBuilder{
		Keys:        &sevtest.AmdKeys{Ark: keys.ARK, Ask: keys.ASK, Asvk: keys.ASK, Vcek: keys.VCEK},
		ProductName: devsnp.ProductName, ArkCreationTime: created, AskCreationTime: created, AsvkCreationTime: created, VcekCreationTime: created,
		VcekCustom: sevtest.CertOverride{Extensions: sevtest.CustomExtensions(devsnp.TCB, make([]byte, abi.ChipIDSize), "", devsnp.ProductName)},
	}
	theirs, err := b.TestOnlyCertChain()
	if err != nil {
		t.Fatal(err)
	}
	name := func(n pkix.Name) string { n.SerialNumber = ""; n.Names = nil; return n.String() }
	for _, c := range []struct {
		role       string
		got, want  *x509.Certificate
		extensions bool
	}{{"ARK", ours.ARK, theirs.Ark, false}, {"ASK", ours.ASK, theirs.Ask, false}, {"VCEK", ours.VCEK, theirs.Vcek, true}} {
		g, w := c.got, c.want
		if name(g.Subject) != name(w.Subject) || name(g.Issuer) != name(w.Issuer) {
			t.Errorf("%s: subject %q issuer %q, go-sev-guest's %q %q", c.role, name(g.Subject), name(g.Issuer), name(w.Subject), name(w.Issuer))
		}
		if g.Version != w.Version || g.SignatureAlgorithm != w.SignatureAlgorithm || g.PublicKeyAlgorithm != w.PublicKeyAlgorithm {
			t.Errorf("%s: version %d %v %v, go-sev-guest's %d %v %v", c.role, g.Version, g.SignatureAlgorithm, g.PublicKeyAlgorithm, w.Version, w.SignatureAlgorithm, w.PublicKeyAlgorithm)
		}
		if !g.NotBefore.Equal(w.NotBefore) || !g.NotAfter.Equal(w.NotAfter) {
			t.Errorf("%s: valid %s..%s, go-sev-guest's %s..%s", c.role, g.NotBefore, g.NotAfter, w.NotBefore, w.NotAfter)
		}
		if g.IsCA != w.IsCA || g.KeyUsage != w.KeyUsage || len(g.CRLDistributionPoints) != len(w.CRLDistributionPoints) ||
			(len(g.CRLDistributionPoints) == 1 && g.CRLDistributionPoints[0] != w.CRLDistributionPoints[0]) {
			t.Errorf("%s: CA %v usage %v CRL %v, go-sev-guest's %v %v %v", c.role, g.IsCA, g.KeyUsage, g.CRLDistributionPoints, w.IsCA, w.KeyUsage, w.CRLDistributionPoints)
		}
		if c.extensions {
			amd := func(exts []pkix.Extension) map[string][]byte {
				out := map[string][]byte{}
				for _, e := range exts {
					if len(e.Id) > 7 && e.Id[:7].Equal([]int{1, 3, 6, 1, 4, 1, 3704}) {
						out[e.Id.String()] = e.Value
					}
				}
				return out
			}
			ge, we := amd(g.Extensions), amd(w.Extensions)
			if len(ge) != len(we) || len(ge) == 0 {
				t.Errorf("%s: %d AMD extensions, go-sev-guest's %d", c.role, len(ge), len(we))
			}
			for id, v := range we {
				if !bytes.Equal(ge[id], v) {
					t.Errorf("%s: extension %s is %x, go-sev-guest's %x", c.role, id, ge[id], v)
				}
			}
		}
	}
	exts, err := kds.VcekCertificateExtensions(ours.VCEK)
	if err != nil {
		t.Fatal(err)
	}
	if exts.ProductName != devsnp.ProductName || kds.DecomposeTCBVersion(exts.TCBVersion) != devsnp.TCB || !bytes.Equal(exts.HWID, make([]byte, abi.ChipIDSize)) {
		t.Fatalf("VCEK extensions %+v", exts)
	}
}

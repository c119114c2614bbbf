package attest_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	sevtest "github.com/google/go-sev-guest/testing"
	"github.com/google/uuid"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/attest"
	"github.com/gavelhq/gavel/engine/attest/devsnp"
)

// created is when the test chains begin; at is when they are judged.
var (
	created = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at      = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
)

// chains are test signers over go-sev-guest's fixed test keys (fast), and
// over a second RSA key pair for the wrong-chain cases.
type chains struct {
	good      *devsnp.Signer
	otherASK  *devsnp.Signer // same ARK, another ASK key
	otherARK  *devsnp.Signer // another ARK key, same ASK key
	otherVCEK *ecdsa.PrivateKey
}

var (
	chainsOnce sync.Once
	testChains chains
	chainsErr  error
)

func loadChains(t testing.TB) chains {
	t.Helper()
	chainsOnce.Do(func() {
		keys := devsnp.Keys{ARK: sevtest.DefaultArk(), ASK: sevtest.DefaultAsk(), VCEK: sevtest.DefaultVcek()}
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			chainsErr = err
			return
		}
		if testChains.good, chainsErr = devsnp.New(keys, created); chainsErr != nil {
			return
		}
		k := keys
		k.ASK = other
		if testChains.otherASK, chainsErr = devsnp.New(k, created); chainsErr != nil {
			return
		}
		k = keys
		k.ARK = other
		if testChains.otherARK, chainsErr = devsnp.New(k, created); chainsErr != nil {
			return
		}
		testChains.otherVCEK, chainsErr = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	})
	if chainsErr != nil {
		t.Fatal(chainsErr)
	}
	return testChains
}

var (
	nodeKeyDER  = []byte("node public key DER stands here")
	hostData    = [32]byte{0xab, 0xcd}
	measurement = [48]byte{0x11, 0x22, 0x33}
)

func goodReport() devsnp.Report {
	return devsnp.Report{HostData: hostData, Measurement: measurement, ReportData: attest.ReportDataFor(nodeKeyDER)}
}

func policyFor(s *devsnp.Signer) attest.Policy {
	return attest.Policy{
		Roots:           []*x509.Certificate{s.ARK},
		SNPMeasurements: map[string]bool{hex.EncodeToString(measurement[:]): true},
		MinimumTCB:      map[string]attest.TCB{devsnp.CPUID: devsnp.TCBVersion},
	}
}

func TestDevReportVerifies(t *testing.T) {
	c := loadChains(t)
	e, err := c.good.Evidence(goodReport())
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.Verify(e, policyFor(c.good), nodeKeyDER, at)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if v.HostData != hostData || v.MeasurementHex() != hex.EncodeToString(measurement[:]) ||
		v.CPUID != devsnp.CPUID || v.TCB != devsnp.TCBVersion || v.Debug || v.Format != attest.FormatSEVSNP {
		t.Fatalf("verified %+v", v)
	}
	sum := sha256.Sum256(nodeKeyDER)
	if string(v.ReportData[:32]) != string(sum[:]) {
		t.Fatal("report data")
	}
}

// resign signs raw again with key, as a VCEK not in the chain would.
func resign(t *testing.T, raw []byte, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	out := append([]byte(nil), raw...)
	digest := sha512.Sum384(abi.SignedComponent(out))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := abi.SetSignature(r, s, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func pemChain(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// forgedARK has the trusted ARK's subject and key but is signed by another
// key: its key is trusted, its self-signature is not.
func forgedARK(t testing.TB, s *devsnp.Signer) *x509.Certificate {
	t.Helper()
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *s.ARK
	tmpl.SignatureAlgorithm = x509.SHA384WithRSAPSS
	parent := tmpl
	parent.PublicKey = &other.PublicKey
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &parent, s.ARK.PublicKey, other)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestVerifyRefusals: every stage refuses on its own, with its own reason,
// as an InvalidQuote (401).
func TestVerifyRefusals(t *testing.T) {
	c := loadChains(t)
	good := c.good
	sign := func(mut func(*devsnp.Report)) attest.Evidence {
		r := goodReport()
		if mut != nil {
			mut(&r)
		}
		e, err := good.Evidence(r)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	forged := forgedARK(t, good)
	lowTCB := devsnp.TCB
	lowTCB.SnpSpl--
	cases := []struct {
		name   string
		ev     func() attest.Evidence
		policy func(*attest.Policy)
		at     time.Time
		key    []byte
		want   error
	}{
		{name: "unknown format", ev: func() attest.Evidence { e := sign(nil); e.Format = "sgx"; return e }, want: attest.ErrUnknownFormat},
		{name: "virtual evidence on a non-virtual service", ev: func() attest.Evidence {
			return attest.VirtualEvidence(hostData, measurement[:], nil)
		}, want: attest.ErrVirtualRefused},
		{name: "report not 1184 bytes", ev: func() attest.Evidence { e := sign(nil); e.Evidence = e.Evidence[:1000]; return e }, want: attest.ErrReportSize},
		{name: "report with a bad guest policy", ev: func() attest.Evidence {
			e := sign(nil)
			e.Evidence[0x08+2] &^= 0x02 // reserved bit 17 must be 1
			return e
		}, want: attest.ErrReportMalformed},
		{name: "two endorsement certificates", ev: func() attest.Evidence {
			e := sign(nil)
			e.Endorsements = pemChain(good.VCEK, good.ASK)
			return e
		}, want: attest.ErrEndorsements},
		{name: "endorsements not certificates", ev: func() attest.Evidence {
			e := sign(nil)
			e.Endorsements = []byte("not a chain")
			return e
		}, want: attest.ErrEndorsements},
		{name: "certificate table entry wrapping around 4 GiB", ev: func() attest.Evidence {
			e := sign(nil)
			// One entry (offset 48, length 2^32-16: 48+length wraps to 32
			// in 32 bits), then the terminator.
			table := make([]byte, 48+8)
			vcekGUID := uuid.MustParse(abi.VcekGUID)
			copy(table, vcekGUID[:])
			binary.LittleEndian.PutUint32(table[16:], 48)
			binary.LittleEndian.PutUint32(table[20:], 0xfffffff0)
			e.Endorsements = table
			return e
		}, want: attest.ErrEndorsements},
		{name: "certificate table without the ARK", ev: func() attest.Evidence {
			e := sign(nil)
			table := abi.CertTable{Entries: []abi.CertTableEntry{
				{GUID: uuid.MustParse(abi.VcekGUID), RawCert: good.VCEK.Raw},
				{GUID: uuid.MustParse(abi.AskGUID), RawCert: good.ASK.Raw},
			}}
			e.Endorsements = table.Marshal()
			return e
		}, want: attest.ErrEndorsements},
		{name: "untrusted root", ev: func() attest.Evidence { return sign(nil) }, policy: func(p *attest.Policy) { p.Roots = nil }, want: attest.ErrUntrustedRoot},
		{name: "ARK not self-signed", ev: func() attest.Evidence {
			e := sign(nil)
			e.Endorsements = pemChain(good.VCEK, good.ASK, forged)
			return e
		}, want: attest.ErrARKNotSelfSigned},
		{name: "ASK not signed by ARK", ev: func() attest.Evidence {
			e := sign(nil)
			e.Endorsements = pemChain(good.VCEK, c.otherARK.ASK, good.ARK)
			return e
		}, want: attest.ErrASKNotSignedByARK},
		{name: "VCEK not signed by ASK", ev: func() attest.Evidence {
			e := sign(nil)
			e.Endorsements = pemChain(c.otherASK.VCEK, good.ASK, good.ARK)
			return e
		}, want: attest.ErrVCEKNotSignedByASK},
		{name: "chain not yet valid", ev: func() attest.Evidence { return sign(nil) }, at: created.Add(-time.Hour), want: attest.ErrCertificateTime},
		{name: "VCEK expired", ev: func() attest.Evidence { return sign(nil) }, at: created.AddDate(8, 0, 0), want: attest.ErrCertificateTime},
		{name: "signed by a VLEK", ev: func() attest.Evidence {
			return sign(func(r *devsnp.Report) { r.SigningKey = abi.VlekReportSigner })
		}, want: attest.ErrSigningKey},
		{name: "wrong signature", ev: func() attest.Evidence {
			e := sign(nil)
			e.Evidence = resign(t, e.Evidence, c.otherVCEK)
			return e
		}, want: attest.ErrReportSignature},
		{name: "signed bytes altered", ev: func() attest.Evidence {
			e := sign(nil)
			e.Evidence[0xC0] ^= 1 // host data
			return e
		}, want: attest.ErrReportSignature},
		{name: "chain of another product line", ev: func() attest.Evidence { return sign(nil) }, policy: func(p *attest.Policy) {
			ark := *good.ARK
			ark.Subject.CommonName = "ARK-Genoa"
			p.Roots = []*x509.Certificate{&ark}
		}, want: attest.ErrNotKDSChain},
		{name: "report version 1", ev: func() attest.Evidence { return sign(func(r *devsnp.Report) { r.Version = 1 }) }, want: attest.ErrReportVersion},
		{name: "chip key masked", ev: func() attest.Evidence { return sign(func(r *devsnp.Report) { r.MaskChipKey = true }) }, want: attest.ErrMaskChipKey},
		{name: "host-generated report", ev: func() attest.Evidence { return sign(func(r *devsnp.Report) { r.VMPL = 4 }) }, want: attest.ErrHostGenerated},
		{name: "debug policy not allowed", ev: func() attest.Evidence { return sign(func(r *devsnp.Report) { r.Debug = true }) }, want: attest.ErrDebugPolicy},
		{name: "migration agent allowed", ev: func() attest.Evidence { return sign(func(r *devsnp.Report) { r.MigrateMA = true }) }, want: attest.ErrMigrationPolicy},
		{name: "TCB below the VCEK's", ev: func() attest.Evidence { return sign(func(r *devsnp.Report) { r.TCB = &lowTCB }) }, want: attest.ErrEndorsedTCB},
		{name: "chip ID not the VCEK's", ev: func() attest.Evidence { return sign(func(r *devsnp.Report) { r.ChipID[0] = 1 }) }, want: attest.ErrChipID},
		{name: "endorsed TCB not the reported TCB", ev: func() attest.Evidence {
			e := sign(nil)
			e.EndorsedTCB = "db18000000000003"
			return e
		}, want: attest.ErrClaimedTCB},
		{name: "measurement not trusted", ev: func() attest.Evidence { return sign(func(r *devsnp.Report) { r.Measurement[0] ^= 1 }) }, want: attest.ErrMeasurement},
		{name: "no minimum TCB for the CPU", ev: func() attest.Evidence { return sign(nil) }, policy: func(p *attest.Policy) {
			p.MinimumTCB = map[string]attest.TCB{"00a10f11": {}}
		}, want: attest.ErrUnknownCPU},
		{name: "TCB below the minimum", ev: func() attest.Evidence { return sign(nil) }, policy: func(p *attest.Policy) {
			min := devsnp.TCBVersion
			min.Microcode++
			p.MinimumTCB = map[string]attest.TCB{devsnp.CPUID: min}
		}, want: attest.ErrTCBBelowMinimum},
		{name: "report data does not bind the node key", ev: func() attest.Evidence { return sign(nil) }, key: []byte("another node key"), want: attest.ErrReportData},
		{name: "no node key", ev: func() attest.Evidence {
			return sign(func(r *devsnp.Report) { r.ReportData = attest.ReportDataFor(nil) })
		}, key: []byte{}, want: attest.ErrReportData},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := policyFor(good)
			if tc.policy != nil {
				tc.policy(&p)
			}
			when := at
			if !tc.at.IsZero() {
				when = tc.at
			}
			key := nodeKeyDER
			if tc.key != nil {
				key = tc.key
			}
			v, err := attest.Verify(tc.ev(), p, key, when)
			if v != nil || !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, %v; want %v", v, err, tc.want)
			}
			e := engine.AsError(err)
			if e.Code != attest.CodeInvalidQuote || e.Kind != engine.KindUnauthorized {
				t.Fatalf("error %v is not a 401 InvalidQuote", err)
			}
		})
	}
}

// TestCertificateTable: the endorsements may be the AMD certificate table of
// an extended report instead of PEM.
func TestCertificateTable(t *testing.T) {
	c := loadChains(t)
	e, err := c.good.Evidence(goodReport())
	if err != nil {
		t.Fatal(err)
	}
	table := abi.CertTable{Entries: []abi.CertTableEntry{
		{GUID: uuid.MustParse(abi.VcekGUID), RawCert: c.good.VCEK.Raw},
		{GUID: uuid.MustParse(abi.AskGUID), RawCert: c.good.ASK.Raw},
		{GUID: uuid.MustParse(abi.ArkGUID), RawCert: c.good.ARK.Raw},
	}}
	e.Endorsements = table.Marshal()
	if _, err := attest.Verify(e, policyFor(c.good), nodeKeyDER, at); err != nil {
		t.Fatalf("Verify with a certificate table: %v", err)
	}
}

// TestEndorsedTCB: CCF's claimed TCB, when given, is the reported one.
func TestEndorsedTCB(t *testing.T) {
	c := loadChains(t)
	e, err := c.good.Evidence(goodReport())
	if err != nil {
		t.Fatal(err)
	}
	e.EndorsedTCB = "db18000000000004" // devsnp.TCB: microcode 219, SNP 24, boot loader 4
	if _, err := attest.Verify(e, policyFor(c.good), nodeKeyDER, at); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

// TestAllowDebug: a development setting admits a debuggable guest, and says so.
func TestAllowDebug(t *testing.T) {
	c := loadChains(t)
	r := goodReport()
	r.Debug = true
	e, err := c.good.Evidence(r)
	if err != nil {
		t.Fatal(err)
	}
	p := policyFor(c.good)
	p.AllowDebug = true
	v, err := attest.Verify(e, p, nodeKeyDER, at)
	if err != nil || !v.Debug {
		t.Fatalf("Verify = %+v, %v", v, err)
	}
}

// TestVirtual: virtual evidence is accepted only by a virtual service, and
// checked like a report otherwise.
func TestVirtual(t *testing.T) {
	m := []byte{0xde, 0xad}
	p := attest.Policy{Virtual: true, VirtualMeasurements: map[string]bool{"dead": true}}
	rd := attest.ReportDataFor(nodeKeyDER)
	v, err := attest.Verify(attest.VirtualEvidence(hostData, m, rd[:32]), p, nodeKeyDER, at)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if v.HostData != hostData || v.MeasurementHex() != "dead" || v.Format != attest.FormatVirtual {
		t.Fatalf("verified %+v", v)
	}
	cases := []struct {
		name string
		ev   []byte
		p    attest.Policy
		want error
	}{
		{"not virtual", attest.VirtualEvidence(hostData, m, rd[:]).Evidence, attest.Policy{VirtualMeasurements: p.VirtualMeasurements}, attest.ErrVirtualRefused},
		{"not JSON", []byte("{"), p, attest.ErrMalformedEvidence},
		{"host data short", []byte(`{"measurement":"dead","host_data":"abcd","report_data":"AA=="}`), p, attest.ErrMalformedEvidence},
		{"measurement not hex", []byte(`{"measurement":"Insecure hard-coded virtual measurement v1","host_data":"` + hex.EncodeToString(hostData[:]) + `","report_data":"AA=="}`), p, attest.ErrMalformedEvidence},
		{"unknown field", []byte(`{"measurement":"dead","host_data":"` + hex.EncodeToString(hostData[:]) + `","report_data":"AA==","x":1}`), p, attest.ErrMalformedEvidence},
		{"measurement not trusted", attest.VirtualEvidence(hostData, []byte{1}, rd[:]).Evidence, p, attest.ErrMeasurement},
		{"report data unbound", attest.VirtualEvidence(hostData, m, []byte{1}).Evidence, p, attest.ErrReportData},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := attest.Verify(attest.Evidence{Format: attest.FormatVirtual, Evidence: tc.ev}, tc.p, nodeKeyDER, at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseEvidence(t *testing.T) {
	c := loadChains(t)
	e, err := c.good.Evidence(goodReport())
	if err != nil {
		t.Fatal(err)
	}
	wire, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	back, err := attest.ParseEvidence(wire)
	if err != nil || back.Format != e.Format || !bytes.Equal(back.Evidence, e.Evidence) || !bytes.Equal(back.Endorsements, e.Endorsements) {
		t.Fatalf("round trip: %v", err)
	}
	ccf := `{"format":"AMD_SEV_SNP_v1","quote":"` + base64.StdEncoding.EncodeToString(e.Evidence) + `","endorsements":"` + base64.StdEncoding.EncodeToString(e.Endorsements) + `"}`
	if back, err := attest.ParseEvidence([]byte(ccf)); err != nil || back.Format != attest.FormatSEVSNP || !bytes.Equal(back.Evidence, e.Evidence) {
		t.Fatalf("CCF's quote info: %v", err)
	}
	bad := []struct {
		name, json string
		want       error
	}{
		{"not JSON", `{`, attest.ErrMalformedEvidence},
		{"unknown format", `{"format":"OE_SGX_v1","evidence":"AA=="}`, attest.ErrUnknownFormat},
		{"no evidence", `{"format":"sev-snp"}`, attest.ErrMalformedEvidence},
		{"evidence and quote", `{"format":"sev-snp","evidence":"AA==","quote":"AA=="}`, attest.ErrMalformedEvidence},
		{"unknown field", `{"format":"sev-snp","evidence":"AA==","uvm":1}`, attest.ErrMalformedEvidence},
		{"trailing data", `{"format":"sev-snp","evidence":"AA=="} {}`, attest.ErrMalformedEvidence},
		{"not base64", `{"format":"sev-snp","evidence":"%%"}`, attest.ErrMalformedEvidence},
	}
	for _, tc := range bad {
		if _, err := attest.ParseEvidence([]byte(tc.json)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParseTCBHex(t *testing.T) {
	cases := []struct {
		cpuid, hex string
		want       attest.TCB
	}{
		{"00a00f11", "db18000000000004", attest.TCB{BootLoader: 4, SNP: 0x18, Microcode: 0xdb}},              // Milan
		{"00a10f11", "5417000000000b09", attest.TCB{BootLoader: 9, TEE: 0x0b, SNP: 0x17, Microcode: 0x54}},   // Genoa
		{"00b00f21", "4d00000001000103", attest.TCB{FMC: 3, BootLoader: 1, TEE: 0, SNP: 1, Microcode: 0x4d}}, // Turin
	}
	for _, tc := range cases {
		got, err := attest.ParseTCBHex(tc.cpuid, tc.hex)
		if err != nil || got != tc.want {
			t.Errorf("ParseTCBHex(%s, %s) = %v, %v; want %v", tc.cpuid, tc.hex, got, err, tc.want)
		}
	}
	for _, bad := range [][2]string{{"00a00f1", "db18000000000004"}, {"00a00f11", "db1800000000004"}, {"00a00f11", "xx18000000000004"}} {
		if _, err := attest.ParseTCBHex(bad[0], bad[1]); err == nil {
			t.Errorf("ParseTCBHex(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

// BenchmarkVerifyDevReport is one join's attestation check: the chain, the
// report signature and go-sev-guest's own verification.
func BenchmarkVerifyDevReport(b *testing.B) {
	c := loadChains(b)
	e, err := c.good.Evidence(goodReport())
	if err != nil {
		b.Fatal(err)
	}
	p := policyFor(c.good)
	for b.Loop() {
		if _, err := attest.Verify(e, p, nodeKeyDER, at); err != nil {
			b.Fatal(err)
		}
	}
}

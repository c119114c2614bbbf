package attest_test

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/google/go-sev-guest/verify/testdata"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/gavelhq/gavel/engine/attest"
)

// The real report: go-sev-guest's verify/testdata, a report from a Milan
// guest launched without an ID block (version 2, debug allowed, REPORT_DATA
// 01 02 03 04 05 then zeros), its VCEK from AMD's KDS, and AMD's Milan ASK
// and ARK (verify/trust), all Apache-2.0, Google LLC.
const (
	realMeasurement = "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"
	realCPUID       = "00a00f10" // Milan B0, from the VCEK's product name
)

// realAt is inside the VCEK's validity (2022-09-24 to 2029-09-24).
var realAt = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func realEvidence() attest.Evidence {
	vcek := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: testdata.VcekBytes})
	return attest.Evidence{
		Format:       attest.FormatSEVSNP,
		Evidence:     testdata.AttestationBytes,
		Endorsements: append(vcek, trust.AskArkMilanVcekBytes...), // ASK, then ARK
	}
}

func realPolicy() attest.Policy {
	return attest.Policy{
		AllowDebug:      true,
		SNPMeasurements: map[string]bool{realMeasurement: true},
		MinimumTCB:      map[string]attest.TCB{realCPUID: {}},
	}
}

// TestRealAMDReport: a report signed by a real AMD chip verifies to AMD's
// Milan root with no extra root, and every field comes out as AMD's tools
// read it. Its REPORT_DATA binds no key of ours, which is the only refusal.
func TestRealAMDReport(t *testing.T) {
	v, err := attest.VerifyEvidence(realEvidence(), realPolicy(), realAt)
	if err != nil {
		t.Fatalf("VerifyEvidence: %v", err)
	}
	if v.MeasurementHex() != realMeasurement || v.CPUID != realCPUID || !v.Debug || v.HostData != ([32]byte{}) {
		t.Fatalf("verified %+v", v)
	}
	// reported_tcb 0x4405000000000002: microcode 0x44, SNP 5, boot loader 2.
	if want := (attest.TCB{BootLoader: 2, TEE: 0, SNP: 5, Microcode: 68}); v.TCB != want {
		t.Fatalf("TCB %v, want %v", v.TCB, want)
	}
	if hex.EncodeToString(v.ReportData[:5]) != "0102030405" {
		t.Fatalf("report data %x", v.ReportData)
	}
	if err := v.Check(realPolicy(), []byte("any node key")); !errors.Is(err, attest.ErrReportData) {
		t.Fatalf("Check = %v, want %v", err, attest.ErrReportData)
	}

	p := realPolicy()
	p.AllowDebug = false
	if _, err := attest.VerifyEvidence(realEvidence(), p, realAt); !errors.Is(err, attest.ErrDebugPolicy) {
		t.Fatalf("without AllowDebug: %v, want %v", err, attest.ErrDebugPolicy)
	}
	if _, err := attest.VerifyEvidence(realEvidence(), realPolicy(), time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, attest.ErrCertificateTime) {
		t.Fatalf("after the VCEK expired: %v, want %v", err, attest.ErrCertificateTime)
	}
	e := realEvidence()
	e.Evidence = append([]byte(nil), e.Evidence...)
	e.Evidence[0x90] ^= 1
	if _, err := attest.VerifyEvidence(e, realPolicy(), realAt); !errors.Is(err, attest.ErrReportSignature) {
		t.Fatalf("measurement altered: %v, want %v", err, attest.ErrReportSignature)
	}
}

// TestRealVCEKUnderDevRoot: trusting a development root adds to AMD's
// roots and lends them nothing: AMD's VCEK under the development ASK and ARK
// is refused, and the real chain still verifies with the extra root present.
func TestRealVCEKUnderDevRoot(t *testing.T) {
	c := loadChains(t)
	p := realPolicy()
	p.Roots = []*x509.Certificate{c.good.ARK}
	e := realEvidence()
	e.Endorsements = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: testdata.VcekBytes}), pemChain(c.good.ASK, c.good.ARK)...)
	if _, err := attest.VerifyEvidence(e, p, realAt); !errors.Is(err, attest.ErrVCEKNotSignedByASK) {
		t.Fatalf("AMD's VCEK under the development chain: %v, want %v", err, attest.ErrVCEKNotSignedByASK)
	}
	if _, err := attest.VerifyEvidence(realEvidence(), p, realAt); err != nil {
		t.Fatalf("real chain with an extra root: %v", err)
	}
}

package attest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/uuid"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/attest"
	"github.com/gavelhq/gavel/engine/attest/devsnp"
)

// reasons are every refusal Verify may give; a fuzzed input must end in one.
var reasons = []error{
	attest.ErrMalformedEvidence, attest.ErrUnknownFormat, attest.ErrVirtualRefused,
	attest.ErrReportSize, attest.ErrReportMalformed, attest.ErrReportVersion, attest.ErrEndorsements,
	attest.ErrUntrustedRoot, attest.ErrARKNotSelfSigned, attest.ErrASKNotSignedByARK, attest.ErrVCEKNotSignedByASK,
	attest.ErrCertificateTime, attest.ErrSigningKey, attest.ErrReportSignature, attest.ErrNotKDSChain,
	attest.ErrMaskChipKey, attest.ErrHostGenerated, attest.ErrDebugPolicy, attest.ErrMigrationPolicy,
	attest.ErrEndorsedTCB, attest.ErrChipID, attest.ErrClaimedTCB, attest.ErrMeasurement, attest.ErrUnknownCPU,
	attest.ErrTCBBelowMinimum, attest.ErrReportData,
}

func checkRefusal(t *testing.T, err error) {
	t.Helper()
	if e := engine.AsError(err); e.Code != attest.CodeInvalidQuote || e.Kind != engine.KindUnauthorized {
		t.Fatalf("%v is not a 401 InvalidQuote", err)
	}
	for _, r := range reasons {
		if errors.Is(err, r) {
			return
		}
	}
	t.Fatalf("%v carries no known reason", err)
}

// FuzzParseEvidence: the join's attestation JSON parses or is refused as
// malformed; what parses writes back to what it read.
func FuzzParseEvidence(f *testing.F) {
	f.Add([]byte(`{"format":"sev-snp","evidence":"AAEC","endorsements":"LS0t"}`))
	f.Add([]byte(`{"format":"AMD_SEV_SNP_v1","quote":"AAEC","endorsed_tcb":"db18000000000004"}`))
	f.Add([]byte(`{"format":"virtual","evidence":"e30="}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := attest.ParseEvidence(data)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		wire, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		back, err := attest.ParseEvidence(wire)
		if err != nil || back.Format != e.Format || !bytes.Equal(back.Evidence, e.Evidence) || !bytes.Equal(back.Endorsements, e.Endorsements) || back.EndorsedTCB != e.EndorsedTCB {
			t.Fatalf("round trip of %s: %v", wire, err)
		}
	})
}

// FuzzVerifySNPReport: any report bytes under the development chain are
// verified or refused with a reason; what verifies says what its bytes say.
func FuzzVerifySNPReport(f *testing.F) {
	c := loadChains(f)
	for _, mut := range []func(*devsnp.Report){nil, func(r *devsnp.Report) { r.Debug = true }, func(r *devsnp.Report) { r.Version = 2 }} {
		r := goodReport()
		if mut != nil {
			mut(&r)
		}
		raw, err := c.good.Sign(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	p := policyFor(c.good)
	endorsements := c.good.Endorsements()
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, err := attest.Verify(attest.Evidence{Format: attest.FormatSEVSNP, Evidence: raw, Endorsements: endorsements}, p, nodeKeyDER, at)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if !bytes.Equal(v.HostData[:], raw[0xC0:0xE0]) || !bytes.Equal(v.Measurement, raw[0x90:0xC0]) || !bytes.Equal(v.ReportData, raw[0x50:0x90]) {
			t.Fatal("verified fields are not the report's bytes")
		}
	})
}

// FuzzVirtualEvidence: virtual evidence is verified or refused with a reason.
func FuzzVirtualEvidence(f *testing.F) {
	rd := attest.ReportDataFor(nodeKeyDER)
	f.Add(attest.VirtualEvidence(hostData, []byte{0xde, 0xad}, rd[:]).Evidence)
	f.Add([]byte(`{"measurement":"dead","host_data":"00","report_data":"AA=="}`))
	p := attest.Policy{Virtual: true, VirtualMeasurements: map[string]bool{"dead": true}}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := attest.Verify(attest.Evidence{Format: attest.FormatVirtual, Evidence: data}, p, nodeKeyDER, at)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if v.MeasurementHex() != "dead" {
			t.Fatalf("verified an untrusted measurement %s", v.MeasurementHex())
		}
	})
}

// FuzzEndorsements: any endorsement bytes (PEM or an AMD certificate table)
// beside a good report are verified or refused with a reason; only the
// development chain itself verifies.
func FuzzEndorsements(f *testing.F) {
	c := loadChains(f)
	raw, err := c.good.Sign(goodReport())
	if err != nil {
		f.Fatal(err)
	}
	pemChain := c.good.Endorsements()
	table := abi.CertTable{Entries: []abi.CertTableEntry{
		{GUID: uuid.MustParse(abi.VcekGUID), RawCert: c.good.VCEK.Raw},
		{GUID: uuid.MustParse(abi.AskGUID), RawCert: c.good.ASK.Raw},
		{GUID: uuid.MustParse(abi.ArkGUID), RawCert: c.good.ARK.Raw},
	}}
	f.Add(pemChain)
	f.Add(table.Marshal())
	f.Add(pemChain[:len(pemChain)/2])
	p := policyFor(c.good)
	f.Fuzz(func(t *testing.T, endorsements []byte) {
		v, err := attest.Verify(attest.Evidence{Format: attest.FormatSEVSNP, Evidence: raw, Endorsements: endorsements}, p, nodeKeyDER, at)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if v.HostData != hostData {
			t.Fatal("verified host data differs from the report's")
		}
	})
}

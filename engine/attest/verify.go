package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Verified is evidence whose hardware (or, for virtual, declared) statement
// has been checked: what it says about the node.
type Verified struct {
	Format Format
	// HostData is SEV-SNP's HOST_DATA, or the virtual evidence's host_data.
	HostData [32]byte
	// Measurement is the launch measurement (48 bytes for SEV-SNP).
	Measurement []byte
	// ReportData is the report's REPORT_DATA (64 bytes for SEV-SNP).
	ReportData []byte
	// CPUID (CCF's hex form), TCB (reported) and Debug are SEV-SNP's only.
	CPUID string
	TCB   TCB
	Debug bool
}

// MeasurementHex is the measurement in lower-case hex, as governed tables key it.
func (v *Verified) MeasurementHex() string { return hex.EncodeToString(v.Measurement) }

// Verify checks evidence in CCF's order: VerifyEvidence, then Check. A join
// checks host data between the two (trusted host data, or a transparent
// statement), as CCF does, and so calls them apart.
func Verify(e Evidence, p Policy, nodePublicKeyDER []byte, at time.Time) (*Verified, error) {
	v, err := VerifyEvidence(e, p, at)
	if err != nil {
		return nil, err
	}
	if err := v.Check(p, nodePublicKeyDER); err != nil {
		return nil, err
	}
	return v, nil
}

// VerifyEvidence checks what the hardware says, with the certificates judged
// at at (the entry's time). For sev-snp: the report's size, the VCEK → ASK →
// ARK chain to a trusted root, the report's signature, then its version,
// signing key, VMPL and guest policy (debug only if p.AllowDebug), the VCEK's
// endorsed TCB and chip ID. For virtual: that p.Virtual is set and the
// evidence is well formed.
func VerifyEvidence(e Evidence, p Policy, at time.Time) (*Verified, error) {
	switch e.Format {
	case FormatSEVSNP:
		return verifySNP(e, p, at)
	case FormatVirtual:
		if !p.Virtual {
			return nil, refuse(ErrVirtualRefused, "the service was not started in virtual mode")
		}
		return verifyVirtual(e)
	default:
		return nil, refuse(ErrUnknownFormat, "format %q", clip(string(e.Format)))
	}
}

// Check judges verified evidence against the governed values, in CCF's order:
// the measurement is trusted, the TCB is at least the CPU's minimum
// (SEV-SNP), and REPORT_DATA starts with SHA-256 of the node's public key DER.
func (v *Verified) Check(p Policy, nodePublicKeyDER []byte) error {
	trusted := p.SNPMeasurements
	if v.Format == FormatVirtual {
		trusted = p.VirtualMeasurements
	}
	if !trusted[v.MeasurementHex()] {
		return refuse(ErrMeasurement, "%s measurement %s is not in the trusted measurements", v.Format, v.MeasurementHex())
	}
	if v.Format == FormatSEVSNP {
		min, ok := p.MinimumTCB[v.CPUID]
		if !ok {
			return refuse(ErrUnknownCPU, "CPUID %s has no governed minimum TCB", v.CPUID)
		}
		if !v.TCB.AtLeast(min) {
			return refuse(ErrTCBBelowMinimum, "reported TCB %v, minimum for CPUID %s is %v", v.TCB, v.CPUID, min)
		}
	}
	sum := sha256.Sum256(nodePublicKeyDER)
	if len(nodePublicKeyDER) == 0 || !bytes.HasPrefix(v.ReportData, sum[:]) {
		return refuse(ErrReportData, "REPORT_DATA must start with SHA-256 of the node's public key DER (%x)", sum)
	}
	return nil
}

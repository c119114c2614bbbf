package attest

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strconv"
)

// Policy is what the service's configuration and governed tables say about
// attestation. The zero Policy accepts nothing: no virtual evidence, no
// measurement, no CPU.
type Policy struct {
	// Virtual is true when the service was started in virtual mode (its
	// genesis says so); only then is virtual evidence accepted.
	Virtual bool
	// AllowDebug admits SEV-SNP guests whose policy allows debugging (CCF
	// never does; a development setting).
	AllowDebug bool
	// Roots are trusted ARKs beyond AMD's own (Milan, Genoa, Turin, embedded
	// by go-sev-guest), e.g. a development chain's.
	Roots []*x509.Certificate
	// SNPMeasurements and VirtualMeasurements are the trusted measurements,
	// lower-case hex.
	SNPMeasurements     map[string]bool
	VirtualMeasurements map[string]bool
	// MinimumTCB is the governed minimum TCB per CPU model, keyed by CCF's
	// CPUID hex (CPUID[1].EAX with the reserved bits clear, 8 lower-case hex
	// digits, e.g. "00a00f11" for Milan B1).
	MinimumTCB map[string]TCB
}

// TCB is a TCB version by component. FMC is Turin's only.
type TCB struct {
	FMC        uint8 `json:"fmc,omitempty"`
	BootLoader uint8 `json:"boot_loader"`
	TEE        uint8 `json:"tee"`
	SNP        uint8 `json:"snp"`
	Microcode  uint8 `json:"microcode"`
}

// AtLeast reports whether every component of t is at least min's.
func (t TCB) AtLeast(min TCB) bool {
	return t.FMC >= min.FMC && t.BootLoader >= min.BootLoader && t.TEE >= min.TEE &&
		t.SNP >= min.SNP && t.Microcode >= min.Microcode
}

func (t TCB) String() string {
	return fmt.Sprintf("{fmc %d, boot_loader %d, tee %d, snp %d, microcode %d}", t.FMC, t.BootLoader, t.TEE, t.SNP, t.Microcode)
}

// CPU families of the SEV-SNP products.
const (
	familyZen3Zen4 = 0x19
	familyZen5     = 0x1a
)

// decomposeTCB splits a TCB_VERSION by the layout of the CPU family: Milan
// and Genoa put the boot loader, TEE, SNP and microcode levels in bytes 0, 1,
// 6 and 7; Turin puts FMC, boot loader, TEE and SNP in bytes 0–3.
func decomposeTCB(raw uint64, family uint8) TCB {
	b := func(i int) uint8 { return uint8(raw >> (8 * i)) }
	if family == familyZen5 {
		return TCB{FMC: b(0), BootLoader: b(1), TEE: b(2), SNP: b(3), Microcode: b(7)}
	}
	return TCB{BootLoader: b(0), TEE: b(1), SNP: b(6), Microcode: b(7)}
}

// ParseTCBHex reads a TCB version as CCF's set_snp_minimum_tcb_version_hex
// gives it (the 64-bit TCB_VERSION as 16 hex digits, e.g. "db18000000000004"
// for Milan) for the CPU cpuid (as in Policy.MinimumTCB).
func ParseTCBHex(cpuid, tcbHex string) (TCB, error) {
	family, _, _, err := parseCPUID(cpuid)
	if err != nil {
		return TCB{}, err
	}
	if len(tcbHex) != 16 {
		return TCB{}, fmt.Errorf("TCB version %q is not 16 hex digits", clip(tcbHex))
	}
	raw, err := strconv.ParseUint(tcbHex, 16, 64)
	if err != nil {
		return TCB{}, fmt.Errorf("TCB version %q is not hex", clip(tcbHex))
	}
	return decomposeTCB(raw, family), nil
}

// cpuidHex renders family, model and stepping as CCF keys its TCB table.
func cpuidHex(family, model, stepping uint8) string {
	var extFamily, baseFamily uint32 = 0, uint32(family)
	if family >= 0xf {
		extFamily, baseFamily = uint32(family)-0xf, 0xf
	}
	eax := extFamily<<20 | uint32(model>>4)<<16 | baseFamily<<8 | uint32(model&0xf)<<4 | uint32(stepping&0xf)
	return fmt.Sprintf("%08x", eax)
}

func parseCPUID(s string) (family, model, stepping uint8, err error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 4 {
		return 0, 0, 0, fmt.Errorf("CPUID %q is not 8 hex digits", clip(s))
	}
	eax := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	family = uint8((eax>>8)&0xf) + uint8((eax>>20)&0xff)
	model = uint8((eax>>16)&0xf)<<4 | uint8((eax>>4)&0xf)
	return family, model, uint8(eax & 0xf), nil
}

// ReportDataFor is the REPORT_DATA a node puts in its report: SHA-256 of its
// public key's DER (SubjectPublicKeyInfo), then zeros.
func ReportDataFor(nodePublicKeyDER []byte) [64]byte {
	var rd [64]byte
	sum := sha256.Sum256(nodePublicKeyDER)
	copy(rd[:], sum[:])
	return rd
}

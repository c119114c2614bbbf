package attest

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
	"github.com/google/uuid"
)

// Limits CCF applies to the report (src/pal/attestation.cpp).
const (
	minReportVersion = 2 // CCF 6; CCF 7 asks for 3, which go-sev-guest's real Milan report (2) is not
	maxGuestVMPL     = 3 // a higher VMPL is a host-generated report
)

// chain is the endorsements: the VCEK and the certificates above it.
type chain struct{ vcek, ask, ark *x509.Certificate }

func verifySNP(e Evidence, p Policy, at time.Time) (*Verified, error) {
	raw := e.Evidence
	if len(raw) != abi.ReportSize {
		return nil, refuse(ErrReportSize, "report has %d bytes, an SEV-SNP report has %d", len(raw), abi.ReportSize)
	}
	report, err := abi.ReportToProto(raw)
	if err != nil {
		return nil, refuse(ErrReportMalformed, "%v", err)
	}
	if report.GetVersion() < minReportVersion {
		return nil, refuse(ErrReportVersion, "version %d, at least %d is required", report.GetVersion(), minReportVersion)
	}
	c, err := parseEndorsements(e.Endorsements)
	if err != nil {
		return nil, err
	}
	root, productLine := trustedRoot(c.ark, p.Roots)
	if root == nil {
		return nil, refuse(ErrUntrustedRoot, "ARK %q has the key of no trusted root", clip(c.ark.Subject.CommonName))
	}
	if err := c.ark.CheckSignature(c.ark.SignatureAlgorithm, c.ark.RawTBSCertificate, c.ark.Signature); err != nil {
		return nil, refuse(ErrARKNotSelfSigned, "%v", err)
	}
	if err := c.ask.CheckSignatureFrom(root); err != nil {
		return nil, refuse(ErrASKNotSignedByARK, "%v", err)
	}
	if err := c.vcek.CheckSignatureFrom(c.ask); err != nil {
		return nil, refuse(ErrVCEKNotSignedByASK, "%v", err)
	}
	for _, x := range []*x509.Certificate{c.vcek, c.ask, c.ark} {
		if at.Before(x.NotBefore) || at.After(x.NotAfter) {
			return nil, refuse(ErrCertificateTime, "%q is valid from %s to %s, the entry's time is %s",
				clip(x.Subject.CommonName), x.NotBefore.UTC().Format(time.RFC3339), x.NotAfter.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
		}
	}
	// The signer must be the VCEK before its signature means anything.
	signer, err := abi.ParseSignerInfo(report.GetSignerInfo())
	if err != nil {
		return nil, refuse(ErrReportMalformed, "%v", err)
	}
	if signer.SigningKey != abi.VcekReportSigner {
		return nil, refuse(ErrSigningKey, "signing key is %v", signer.SigningKey)
	}
	if err := verify.SnpReportSignature(raw, c.vcek); err != nil {
		return nil, refuse(ErrReportSignature, "%v", err)
	}
	// go-sev-guest's own verification, offline, rooted in the root just
	// matched and the ASK just checked: the KDS shape of the certificates
	// (names, algorithms, extensions, product) as well as the signature.
	opts := &verify.Options{
		DisableCertFetching: true,
		Now:                 at,
		TrustedRoots: map[string][]*trust.AMDRootCerts{productLine: {{
			ProductLine:  productLine,
			ProductCerts: &trust.ProductCerts{Ark: root, Ask: c.ask},
		}}},
	}
	att := &spb.Attestation{Report: report, CertificateChain: &spb.CertificateChain{
		VcekCert: c.vcek.Raw, AskCert: c.ask.Raw, ArkCert: c.ark.Raw,
	}}
	if err := verify.SnpAttestation(att, opts); err != nil {
		return nil, refuse(ErrNotKDSChain, "%v", err)
	}
	if signer.MaskChipKey {
		return nil, refuse(ErrMaskChipKey, "MASK_CHIP_KEY is set")
	}
	if report.GetVmpl() > maxGuestVMPL {
		return nil, refuse(ErrHostGenerated, "VMPL %d", report.GetVmpl())
	}
	policy, err := abi.ParseSnpPolicy(report.GetPolicy())
	if err != nil {
		return nil, refuse(ErrReportMalformed, "%v", err)
	}
	if policy.Debug && !p.AllowDebug {
		return nil, refuse(ErrDebugPolicy, "the guest policy allows debugging, which would expose guest memory")
	}
	if policy.MigrateMA {
		return nil, refuse(ErrMigrationPolicy, "the guest policy allows a migration agent, which could duplicate the node")
	}
	exts, err := kds.VcekCertificateExtensions(c.vcek)
	if err != nil {
		return nil, refuse(ErrNotKDSChain, "VCEK extensions: %v", err)
	}
	// The VCEK's TCB extensions name the components (blSPL, teeSPL,
	// snpSPL, ucodeSPL); the report's TCB_VERSION is laid out by CPU family.
	family, model, stepping := cpu(report, exts)
	reported := decomposeTCB(report.GetReportedTcb(), family)
	parts := kds.DecomposeTCBVersion(exts.TCBVersion)
	endorsed := TCB{BootLoader: parts.BlSpl, TEE: parts.TeeSpl, SNP: parts.SnpSpl, Microcode: parts.UcodeSpl}
	if !reported.AtLeast(endorsed) {
		return nil, refuse(ErrEndorsedTCB, "reported TCB %v, the VCEK endorses %v", reported, endorsed)
	}
	if len(exts.HWID) != 0 && !bytes.Equal(exts.HWID, report.GetChipId()) {
		return nil, refuse(ErrChipID, "report chip ID %x, VCEK hwID %x", report.GetChipId(), exts.HWID)
	}
	if e.EndorsedTCB != "" {
		claimed, err := strconv.ParseUint(e.EndorsedTCB, 16, 64)
		if len(e.EndorsedTCB) != 16 || err != nil || claimed != report.GetReportedTcb() {
			return nil, refuse(ErrClaimedTCB, "endorsed TCB %q, reported TCB %016x", clip(e.EndorsedTCB), report.GetReportedTcb())
		}
	}
	v := &Verified{
		Format:      FormatSEVSNP,
		Measurement: report.GetMeasurement(),
		ReportData:  report.GetReportData(),
		CPUID:       cpuidHex(family, model, stepping),
		TCB:         reported,
		Debug:       policy.Debug,
	}
	copy(v.HostData[:], report.GetHostData())
	return v, nil
}

// cpu is the report's family, model and stepping: in the report from
// version 3, before that the VCEK's product name.
func cpu(report *spb.Report, exts *kds.Extensions) (family, model, stepping uint8) {
	eax := report.GetCpuid1EaxFms()
	if eax == 0 {
		if product, err := kds.ParseProductName(exts.ProductName, abi.VcekReportSigner); err == nil {
			eax = abi.MaskedCpuid1EaxFromSevProduct(product)
		}
	}
	return abi.FmsFromCpuid1Eax(eax)
}

// parseEndorsements reads the VCEK, ASK and ARK: three PEM certificates in
// that order (CCF's endorsements), or the AMD certificate table of an
// extended report.
func parseEndorsements(data []byte) (chain, error) {
	var ders [][]byte
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		rest := bytes.TrimSpace(data)
		for len(rest) > 0 {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil || b.Type != "CERTIFICATE" {
				return chain{}, refuse(ErrEndorsements, "endorsements hold something other than PEM certificates")
			}
			ders = append(ders, b.Bytes)
			rest = bytes.TrimSpace(rest)
		}
		if len(ders) != 3 {
			return chain{}, refuse(ErrEndorsements, "expected 3 endorsement certificates (VCEK, ASK, ARK) but got %d", len(ders))
		}
	} else {
		table, err := certTable(data)
		if err != nil {
			return chain{}, refuse(ErrEndorsements, "endorsements are neither PEM nor an AMD certificate table: %v", err)
		}
		for _, guid := range []string{abi.VcekGUID, abi.AskGUID, abi.ArkGUID} {
			der := table[uuid.MustParse(guid)]
			if len(der) == 0 {
				return chain{}, refuse(ErrEndorsements, "the certificate table lacks %s", guid)
			}
			ders = append(ders, der)
		}
	}
	var certs [3]*x509.Certificate
	for i, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return chain{}, refuse(ErrEndorsements, "endorsement certificate %d does not parse: %v", i, err)
		}
		certs[i] = c
	}
	return chain{vcek: certs[0], ask: certs[1], ark: certs[2]}, nil
}

// trustedRoot finds the trusted root whose key is the ARK's, as CCF compares
// the ARK's public key to AMD's: AMD's roots first, then extra. It returns
// the trusted copy and its product line.
func trustedRoot(ark *x509.Certificate, extra []*x509.Certificate) (*x509.Certificate, string) {
	key, ok := ark.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return nil, ""
	}
	for _, line := range []string{"Milan", "Genoa", "Turin"} {
		r := trust.DefaultRootCerts[line]
		if r != nil && r.ProductCerts != nil && r.ProductCerts.Ark != nil && key.Equal(r.ProductCerts.Ark.PublicKey) {
			return r.ProductCerts.Ark, line
		}
	}
	for _, r := range extra {
		if r != nil && key.Equal(r.PublicKey) {
			return r, strings.TrimPrefix(r.Subject.CommonName, "ARK-")
		}
	}
	return nil, ""
}

// certTable reads an AMD certificate table (the certificate pages of an
// extended guest request): 24-byte entries {GUID, offset, length, little
// endian} ended by an all-zero entry, each pointing into the same buffer.
// go-sev-guest's CertTable.Unmarshal adds offset and length in 32 bits, so
// a crafted table makes it allocate up to 4 GiB; this reads in place and
// checks in 64 bits.
func certTable(data []byte) (map[uuid.UUID][]byte, error) {
	const entrySize = abi.CertTableEntrySize
	out := map[uuid.UUID][]byte{}
	var headers [][3]uint64
	end := 0
	for {
		if len(data)-end < entrySize {
			return nil, errors.New("the table has no terminating entry")
		}
		e := data[end : end+entrySize]
		end += entrySize
		var guid uuid.UUID
		copy(guid[:], e[:16])
		offset, length := uint64(binary.LittleEndian.Uint32(e[16:])), uint64(binary.LittleEndian.Uint32(e[20:]))
		if guid == (uuid.UUID{}) && offset == 0 && length == 0 {
			break
		}
		headers = append(headers, [3]uint64{uint64(len(headers)), offset, length})
		if _, dup := out[guid]; dup {
			return nil, fmt.Errorf("GUID %s appears twice", guid)
		}
		out[guid] = nil
	}
	for _, h := range headers {
		i, offset, length := h[0], h[1], h[2]
		if offset < uint64(end) || offset+length > uint64(len(data)) {
			return nil, fmt.Errorf("entry %d points outside the certificate data", i)
		}
		var guid uuid.UUID
		copy(guid[:], data[i*entrySize:i*entrySize+16])
		out[guid] = data[offset : offset+length]
	}
	return out, nil
}

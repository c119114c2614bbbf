package attest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"unicode/utf8"
)

// Format names the kind of evidence.
type Format string

const (
	// FormatSEVSNP is an AMD SEV-SNP attestation report.
	FormatSEVSNP Format = "sev-snp"
	// FormatVirtual is declared host data and measurement, no hardware.
	FormatVirtual Format = "virtual"
)

// CCF's QuoteFormat names, accepted as aliases so a CCF node's quote info
// parses as it is.
var formatAliases = map[string]Format{
	"sev-snp": FormatSEVSNP, "AMD_SEV_SNP_v1": FormatSEVSNP,
	"virtual": FormatVirtual, "Insecure_Virtual": FormatVirtual,
}

// maxEvidenceBytes bounds each field: a report is 1184 bytes, an endorsement
// chain a few kilobytes, the AMD certificate table a little more.
const maxEvidenceBytes = 64 << 10

// Evidence is a node's attestation as the join request carries it.
type Evidence struct {
	Format Format
	// Evidence is, for sev-snp, the raw 1184-byte report; for virtual, the
	// JSON {"measurement": HEX, "host_data": HEX, "report_data": BASE64}
	// (CCF's virtual quote, with a hex measurement).
	Evidence []byte
	// Endorsements is, for sev-snp, the PEM VCEK, ASK and ARK in that order
	// (what CCF sends), or the binary AMD certificate table of an extended
	// report; empty for virtual.
	Endorsements []byte
	// EndorsedTCB is CCF's optional claimed TCB (the TCB the endorsements
	// were fetched for, 16 hex digits as ParseTCBHex reads them): when
	// given, it must be the report's reported TCB.
	EndorsedTCB string
}

// evidenceJSON is the wire form: DESIGN.md's {format, evidence,
// endorsements}, byte fields in base64; CCF's field name "quote" is accepted
// for "evidence".
type evidenceJSON struct {
	Format       string `json:"format"`
	Evidence     []byte `json:"evidence,omitempty"`
	Quote        []byte `json:"quote,omitempty"`
	Endorsements []byte `json:"endorsements,omitempty"`
	EndorsedTCB  string `json:"endorsed_tcb,omitempty"`
}

// ParseEvidence reads the JSON form of Evidence. It checks shape only:
// Verify judges the content.
func ParseEvidence(data []byte) (Evidence, error) {
	var w evidenceJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Evidence{}, refuse(ErrMalformedEvidence, "attestation is not JSON {format, evidence, endorsements}: %v", err)
	}
	if dec.More() {
		return Evidence{}, refuse(ErrMalformedEvidence, "data after the attestation object")
	}
	f, ok := formatAliases[w.Format]
	if !ok {
		return Evidence{}, refuse(ErrUnknownFormat, "format %q (sev-snp and virtual are known)", clip(w.Format))
	}
	if w.Evidence != nil && w.Quote != nil {
		return Evidence{}, refuse(ErrMalformedEvidence, "both evidence and quote are given")
	}
	e := Evidence{Format: f, Evidence: w.Evidence, Endorsements: w.Endorsements, EndorsedTCB: w.EndorsedTCB}
	if e.Evidence == nil {
		e.Evidence = w.Quote
	}
	if len(e.Evidence) == 0 {
		return Evidence{}, refuse(ErrMalformedEvidence, "evidence is empty")
	}
	if len(e.Evidence) > maxEvidenceBytes || len(e.Endorsements) > maxEvidenceBytes {
		return Evidence{}, refuse(ErrMalformedEvidence, "evidence or endorsements over %d bytes", maxEvidenceBytes)
	}
	return e, nil
}

// MarshalJSON writes the wire form ParseEvidence reads.
func (e Evidence) MarshalJSON() ([]byte, error) {
	return json.Marshal(evidenceJSON{Format: string(e.Format), Evidence: e.Evidence, Endorsements: e.Endorsements, EndorsedTCB: e.EndorsedTCB})
}

// virtualQuote is the evidence of the virtual format.
type virtualQuote struct {
	Measurement string `json:"measurement"`
	HostData    string `json:"host_data"`
	ReportData  []byte `json:"report_data"`
}

// VirtualEvidence builds virtual evidence declaring hostData and measurement
// and binding reportData (see ReportDataFor).
func VirtualEvidence(hostData [32]byte, measurement []byte, reportData []byte) Evidence {
	q, _ := json.Marshal(virtualQuote{
		Measurement: hex.EncodeToString(measurement),
		HostData:    hex.EncodeToString(hostData[:]),
		ReportData:  reportData,
	})
	return Evidence{Format: FormatVirtual, Evidence: q}
}

func clip(s string) string {
	if len(s) > 64 {
		s = s[:64]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		return s + "…"
	}
	return s
}

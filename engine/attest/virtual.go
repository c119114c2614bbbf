package attest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
)

// maxMeasurementBytes bounds a declared virtual measurement.
const maxMeasurementBytes = 64

func verifyVirtual(e Evidence) (*Verified, error) {
	var q virtualQuote
	dec := json.NewDecoder(bytes.NewReader(e.Evidence))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil || dec.More() {
		return nil, refuse(ErrMalformedEvidence, "virtual evidence is not JSON {measurement, host_data, report_data}")
	}
	v := &Verified{Format: FormatVirtual, ReportData: q.ReportData}
	hd, err := hex.DecodeString(q.HostData)
	if err != nil || len(hd) != len(v.HostData) {
		return nil, refuse(ErrMalformedEvidence, "virtual host_data must be 32 bytes in hex")
	}
	copy(v.HostData[:], hd)
	if v.Measurement, err = hex.DecodeString(q.Measurement); err != nil || len(v.Measurement) == 0 || len(v.Measurement) > maxMeasurementBytes {
		return nil, refuse(ErrMalformedEvidence, "virtual measurement must be 1 to %d bytes in hex", maxMeasurementBytes)
	}
	if len(v.ReportData) == 0 || len(v.ReportData) > 64 {
		return nil, refuse(ErrMalformedEvidence, "virtual report_data must be 1 to 64 bytes (base64)")
	}
	return v, nil
}

package attest

import (
	"errors"
	"fmt"

	"github.com/gavelhq/gavel/engine"
)

// CodeInvalidQuote is CCF's code for a refused attestation (and for a refused
// transparent statement): every error of this package carries it, with
// engine.KindUnauthorized (401, as CCF answers a join).
const CodeInvalidQuote = "InvalidQuote"

// Reasons, one per stage, in the order Verify checks them. Callers tell them
// apart with errors.Is.
var (
	ErrMalformedEvidence = errors.New("malformed attestation evidence")
	ErrUnknownFormat     = errors.New("unknown attestation format")
	ErrVirtualRefused    = errors.New("virtual evidence on a non-virtual service")

	ErrReportSize         = errors.New("SEV-SNP report is not 1184 bytes")
	ErrReportMalformed    = errors.New("SEV-SNP report does not parse")
	ErrEndorsements       = errors.New("endorsements are not a VCEK, ASK and ARK")
	ErrUntrustedRoot      = errors.New("ARK is not a trusted AMD root")
	ErrARKNotSelfSigned   = errors.New("ARK is not self-signed")
	ErrASKNotSignedByARK  = errors.New("ASK not signed by ARK")
	ErrVCEKNotSignedByASK = errors.New("VCEK not signed by ASK")
	ErrCertificateTime    = errors.New("endorsement certificate not valid at the entry's time")
	ErrReportSignature    = errors.New("report signature does not verify")
	ErrNotKDSChain        = errors.New("endorsements are not an AMD KDS chain for this report")
	ErrReportVersion      = errors.New("SEV-SNP report version too old")
	ErrSigningKey         = errors.New("report not signed by a VCEK")
	ErrMaskChipKey        = errors.New("report masks the chip key")
	ErrHostGenerated      = errors.New("report is host-generated (VMPL above 3)")
	ErrDebugPolicy        = errors.New("debug policy not allowed")
	ErrMigrationPolicy    = errors.New("migration agent policy not allowed")
	ErrEndorsedTCB        = errors.New("reported TCB below the VCEK's endorsed TCB")
	ErrChipID             = errors.New("chip ID does not match the VCEK")
	ErrClaimedTCB         = errors.New("endorsed TCB does not match the reported TCB")

	ErrMeasurement     = errors.New("measurement not trusted")
	ErrUnknownCPU      = errors.New("no minimum TCB for this CPU")
	ErrTCBBelowMinimum = errors.New("TCB below the minimum")
	ErrReportData      = errors.New("report data does not bind the node key")
)

func refuse(reason error, format string, args ...any) *engine.Error {
	return &engine.Error{Kind: engine.KindUnauthorized, Code: CodeInvalidQuote, Message: fmt.Sprintf(format, args...), Err: reason}
}

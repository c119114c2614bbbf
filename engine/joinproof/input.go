package joinproof

import (
	"encoding/hex"
	"encoding/pem"
	"unicode/utf8"

	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/receipt"
)

// TransparentStatement is one element of the array the join policy's
// apply(transparent_statements) receives, exactly CCF's schema: optional
// fields are absent when the statement has none (omitempty, nil pointers),
// digests are lower-case hex, x5chain entries are PEM.
type TransparentStatement struct {
	Phdr     ProtectedHeader `json:"phdr"`
	Receipts []Receipt       `json:"receipts"`
}

// ProtectedHeader is the statement's COSE_Sign1 protected header.
type ProtectedHeader struct {
	Alg int64 `json:"alg"`
	// Cty is an int64 (a CoAP content format) or a string; nil when absent.
	Cty     any      `json:"cty,omitempty"`
	X5Chain []string `json:"x5chain"`
	CWT     CWT      `json:"cwt"`
}

// CWT is the statement's CWT claims.
type CWT struct {
	Iss string `json:"iss,omitempty"`
	Sub string `json:"sub,omitempty"`
	Iat *int64 `json:"iat,omitempty"`
	Svn *int64 `json:"svn,omitempty"`
}

// Receipt is one receipt of the statement.
type Receipt struct {
	Alg    int64      `json:"alg"`
	Vds    int64      `json:"vds"`
	Kid    string     `json:"kid,omitempty"`
	CWT    ReceiptCWT `json:"cwt"`
	CCF    CCFClaims  `json:"ccf"`
	Leaves []Leaf     `json:"leaves"`
}

// ReceiptCWT is a receipt's CWT claims.
type ReceiptCWT struct {
	Iss string `json:"iss,omitempty"`
	Sub string `json:"sub,omitempty"`
	Iat *int64 `json:"iat,omitempty"`
}

// CCFClaims is a receipt's "ccf.v1" map.
type CCFClaims struct {
	TxID string `json:"txid,omitempty"`
}

// Leaf is a Merkle leaf a receipt proves.
type Leaf struct {
	ClaimsDigest   string `json:"claims_digest,omitempty"`
	CommitEvidence string `json:"commit_evidence,omitempty"`
	WriteSetDigest string `json:"write_set_digest,omitempty"`
}

// PolicyInput is the argument of apply(transparent_statements) for the
// given statements (a join presents one).
func PolicyInput(vs ...*Validated) []TransparentStatement {
	out := make([]TransparentStatement, len(vs))
	for i, v := range vs {
		out[i] = v.Input
	}
	return out
}

func buildInput(st *cose.Statement, svn *int64, receipts []*receipt.Verified) TransparentStatement {
	in := TransparentStatement{Phdr: ProtectedHeader{
		Alg: int64(st.Alg),
		CWT: CWT{Iss: st.Issuer, Sub: st.Subject, Svn: svn},
	}}
	if raw, ok := st.ProtectedHeader.Get(cose.LabelContentType); ok {
		if n, err := cose.DecodeInt(raw); err == nil {
			in.Phdr.Cty = n
		} else if s, err := cose.DecodeText(raw); err == nil {
			in.Phdr.Cty = s
		}
	}
	for _, c := range st.Chain {
		in.Phdr.X5Chain = append(in.Phdr.X5Chain, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	if !st.IssuedAt.IsZero() {
		iat := st.IssuedAt.Unix()
		in.Phdr.CWT.Iat = &iat
	}
	in.Receipts = make([]Receipt, len(receipts))
	for i, r := range receipts {
		iat := r.IssuedAt.Unix()
		in.Receipts[i] = Receipt{
			Alg: int64(r.Alg),
			Vds: receipt.VDSCCFLedgerSHA256,
			Kid: kidString(r.KeyID),
			CWT: ReceiptCWT{Iss: r.Issuer, Sub: r.Subject, Iat: &iat},
			CCF: CCFClaims{TxID: r.TxID.String()},
			Leaves: []Leaf{{
				ClaimsDigest:   hex.EncodeToString(r.Leaf.ClaimsDigest[:]),
				CommitEvidence: r.Leaf.CommitEvidence,
				WriteSetDigest: hex.EncodeToString(r.Leaf.WriteSetDigest[:]),
			}},
		}
	}
	return in
}

// kidString is the kid as CCF hands it to the policy: its bytes as a string
// (CCF's kids are ASCII hex); a kid that is not UTF-8 goes as hex.
func kidString(kid []byte) string {
	if utf8.Valid(kid) {
		return string(kid)
	}
	return hex.EncodeToString(kid)
}

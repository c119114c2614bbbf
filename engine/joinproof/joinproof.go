package joinproof

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/attest"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/didx509"
	"github.com/gavelhq/gavel/engine/receipt"
)

// Reasons, one per check, in the order Validate makes them.
var (
	ErrMalformed        = errors.New("transparent statement is not a well-formed signed statement")
	ErrNoX5Chain        = errors.New("no certificates in the transparent statement's x5chain")
	ErrNoIssuer         = errors.New("no CWT issuer in the transparent statement")
	ErrIATOutsideChain  = errors.New("CWT iat is outside the x5chain's common validity period")
	ErrIssuer           = errors.New("did:x509 issuer does not resolve against the x5chain")
	ErrSignature        = errors.New("transparent statement signature verification failed")
	ErrPayloadSize      = errors.New("transparent statement payload is not the size of the host data")
	ErrPayloadMismatch  = errors.New("transparent statement payload does not match the host data")
	ErrNoReceipts       = errors.New("no receipts in the transparent statement")
	ErrReceiptMalformed = errors.New("receipt is not a CCF COSE receipt")
	ErrVDS              = errors.New("receipt's verifiable data structure is not CCF_LEDGER_SHA256 (2)")
	ErrClaimsDigest     = errors.New("receipt's claims digest does not match the signed statement")
	ErrReceiptIssuer    = errors.New("receipt not issued by this service")
	ErrReceiptProof     = errors.New("receipt does not verify against this service's identity")
)

// maxStatementBytes bounds the statement (CCF's join request limit is of
// this order; a statement with its receipts is a few kilobytes).
const maxStatementBytes = 1 << 20

// Validated is a transparent statement that passed every structural check.
type Validated struct {
	Statement    *cose.Statement
	ClaimsDigest engine.Digest
	Receipts     []*receipt.Verified
	// Input is this statement as the join policy sees it.
	Input TransparentStatement
}

// Validate checks the transparent statement ts (a COSE_Sign1 with its
// receipts in unprotected header 394) as CCF does before the join policy:
//
//  1. a non-empty x5chain and a non-empty CWT issuer;
//  2. the CWT iat, when present, inside the chain's common validity period;
//  3. the did:x509 issuer resolved against the x5chain (at the iat, or at
//     at when there is none), giving the leaf key;
//  4. the statement's signature under that key;
//  5. the payload equal to hostData (the node's 32-byte host data);
//  6. at least one receipt; for each: vds 2 (CCF_LEDGER_SHA256), its leaf's
//     claims digest equal to SHA-256 of the statement with an empty
//     unprotected header, and its signature over the root its proof computes
//     by a key of service (this service's identity, current or past).
//
// It then builds the policy input. Two differences from CCF, both stricter
// or wider on purpose: without an iat the chain must be valid at at (CCF
// then ignores validity), and the issuer key may be of any algorithm gavel
// verifies (CCF takes EC keys only; the Azure statement is PS384).
func Validate(ts []byte, hostData []byte, service receipt.KeySet, at time.Time) (*Validated, error) {
	if len(ts) > maxStatementBytes {
		return nil, refuse(ErrMalformed, nil, "statement has %d bytes, at most %d are read", len(ts), maxStatementBytes)
	}
	m, err := cose.DecodeSign1(ts)
	if err != nil {
		return nil, refuse(ErrMalformed, err, "COSE_Sign1 envelope")
	}
	phdr, err := m.ProtectedHeader()
	if err != nil {
		return nil, refuse(ErrMalformed, err, "protected header")
	}
	if emptyX5Chain(phdr) {
		return nil, refuse(ErrNoX5Chain, nil, "x5chain (33) is absent or empty")
	}
	if claims, _, _ := phdr.Map(cose.LabelCWTClaims); claims == nil {
		return nil, refuse(ErrNoIssuer, nil, "no CWT claims (15)")
	} else if iss, _, _ := claims.Text(cose.ClaimIssuer); iss == "" {
		return nil, refuse(ErrNoIssuer, nil, "CWT claim iss (1) is absent or empty")
	}
	st, err := cose.ParseStatement(ts)
	if err != nil {
		return nil, refuse(ErrMalformed, err, "signed statement")
	}
	svn, err := svnClaim(st.Claims)
	if err != nil {
		return nil, refuse(ErrMalformed, nil, "CWT claim svn must be an integer")
	}
	resolveAt := at
	if !st.IssuedAt.IsZero() {
		from, until, ok := commonValidity(st.Chain)
		if !ok || st.IssuedAt.Before(from) || st.IssuedAt.After(until) {
			return nil, refuse(ErrIATOutsideChain, nil, "iat %d, the chain is valid together from %s to %s",
				st.IssuedAt.Unix(), from.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
		}
		resolveAt = st.IssuedAt
	}
	key, err := didx509.Resolve(st.Issuer, st.Chain, resolveAt)
	if err != nil {
		return nil, refuse(ErrIssuer, err, "issuer %q", clip(st.Issuer))
	}
	if err := cose.VerifySignature(st.Alg, key, st.Protected, st.Payload, st.Signature); err != nil {
		return nil, refuse(ErrSignature, err, "statement signed with %s", st.Alg)
	}
	if len(st.Payload) != len(hostData) {
		return nil, refuse(ErrPayloadSize, nil, "payload has %d bytes, the host data %d", len(st.Payload), len(hostData))
	}
	if !bytes.Equal(st.Payload, hostData) {
		return nil, refuse(ErrPayloadMismatch, nil, "payload %x, host data %x", st.Payload, hostData)
	}
	raws, err := receipt.Receipts(ts)
	if err != nil {
		return nil, refuse(ErrReceiptMalformed, err, "receipts header (394)")
	}
	if len(raws) == 0 {
		return nil, refuse(ErrNoReceipts, nil, "unprotected header 394 holds no receipt")
	}
	digest, err := cose.ClaimsDigest(ts)
	if err != nil {
		return nil, refuse(ErrMalformed, err, "claims digest")
	}
	v := &Validated{Statement: st, ClaimsDigest: digest}
	for i, raw := range raws {
		r, err := checkReceipt(i, raw, digest, service)
		if err != nil {
			return nil, err
		}
		v.Receipts = append(v.Receipts, r)
	}
	v.Input = buildInput(st, svn, v.Receipts)
	return v, nil
}

// checkReceipt makes CCF's per-receipt checks in its order: the header
// (vds), the leaf's claims digest, then the signature by this service.
func checkReceipt(i int, raw []byte, digest engine.Digest, service receipt.KeySet) (*receipt.Verified, error) {
	m, err := cose.DecodeSign1(raw)
	if err != nil {
		return nil, refuse(ErrReceiptMalformed, err, "receipt %d", i)
	}
	phdr, err := m.ProtectedHeader()
	if err != nil {
		return nil, refuse(ErrReceiptMalformed, err, "receipt %d protected header", i)
	}
	if vds, ok, err := phdr.Int(receipt.LabelVDS); !ok || err != nil || vds != receipt.VDSCCFLedgerSHA256 {
		return nil, refuse(ErrVDS, nil, "receipt %d vds (395) is not %d", i, receipt.VDSCCFLedgerSHA256)
	}
	r, err := receipt.Parse(raw)
	if err != nil {
		return nil, refuse(ErrReceiptMalformed, err, "receipt %d", i)
	}
	if r.Leaf.ClaimsDigest != digest {
		return nil, refuse(ErrClaimsDigest, nil, "receipt %d claims_digest (%x) does not match signed statement hash (%x)", i, r.Leaf.ClaimsDigest, digest)
	}
	key, ok := service.Lookup(r.KeyID)
	if !ok {
		return nil, refuse(ErrReceiptIssuer, nil, "receipt %d kid %q is none of this service's keys", i, clip(string(r.KeyID)))
	}
	v, err := r.Verify(key)
	if err != nil {
		return nil, refuse(ErrReceiptProof, err, "receipt %d", i)
	}
	return v, nil
}

// emptyX5Chain: header 33 absent, an empty byte string, or an empty array.
func emptyX5Chain(phdr cose.Header) bool {
	raw, ok := phdr.Get(cose.LabelX5Chain)
	if !ok {
		return true
	}
	if b, err := cose.DecodeBytes(raw); err == nil {
		return len(b) == 0
	}
	var items []cbor.RawMessage
	return engine.CBORDecode.Unmarshal(raw, &items) == nil && len(items) == 0
}

// commonValidity is the period in which every certificate of chain is valid.
func commonValidity(chain []*x509.Certificate) (from, until time.Time, ok bool) {
	for i, c := range chain {
		if i == 0 || c.NotBefore.After(from) {
			from = c.NotBefore
		}
		if i == 0 || c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	return from, until, len(chain) > 0 && !from.After(until)
}

// svnClaim reads the CWT claim "svn" (text key, as CCF and the Azure
// statement write it): nil when absent.
func svnClaim(claims cose.Header) (*int64, error) {
	raw, ok := claims.Get("svn")
	if !ok {
		return nil, nil
	}
	n, err := cose.DecodeInt(raw)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

func refuse(reason, cause error, format string, args ...any) *engine.Error {
	msg := fmt.Sprintf(format, args...)
	var e *engine.Error
	switch {
	case errors.As(cause, &e):
		msg += ": " + e.Message
		if e.Err != nil {
			msg += ": " + e.Err.Error()
		}
	case cause != nil:
		msg += ": " + cause.Error()
	}
	return &engine.Error{Kind: engine.KindUnauthorized, Code: attest.CodeInvalidQuote, Message: msg, Err: reason}
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

package receipt

import (
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
)

// Embed returns statement with receipts appended to its unprotected header
// 394 (an array of byte strings), after any receipts already there. The
// protected header, payload and signature are kept byte for byte, so the
// claims digest does not change. Each receipt must parse.
func Embed(statement []byte, receipts ...[]byte) ([]byte, error) {
	m, err := cose.DecodeSign1(statement)
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, cose.CodeInvalidStatement, err, "not a COSE_Sign1 statement")
	}
	all, err := embedded(m.Unprotected)
	if err != nil {
		return nil, err
	}
	for i, r := range receipts {
		if _, err := Parse(r); err != nil {
			return nil, engine.Wrap(engine.KindInvalid, CodeInvalidReceipt, err, "receipt %d", i)
		}
		all = append(all, r)
	}
	list, err := engine.CBOR.Marshal(all)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "EncodingFailed", err, "receipts do not encode")
	}
	if m.Unprotected == nil {
		m.Unprotected = cose.Header{}
	}
	m.Unprotected.Set(cose.LabelReceipts, list)
	return m.Encode()
}

// Receipts returns the receipts in a transparent statement's header 394.
func Receipts(ts []byte) ([][]byte, error) {
	m, err := cose.DecodeSign1(ts)
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, cose.CodeInvalidStatement, err, "not a COSE_Sign1 statement")
	}
	return embedded(m.Unprotected)
}

func embedded(uhdr cose.Header) ([][]byte, error) {
	raw, ok := uhdr.Get(cose.LabelReceipts)
	if !ok {
		return nil, nil
	}
	var items []cbor.RawMessage
	if len(raw) == 0 || raw[0]>>5 != 4 || engine.CBORDecode.Unmarshal(raw, &items) != nil {
		return nil, invalidReceipt("receipts header (394) must be an array of byte strings")
	}
	out := make([][]byte, len(items))
	for i, it := range items {
		b, err := cose.DecodeBytes(it)
		if err != nil {
			return nil, invalidReceipt("receipts header (394) item %d: %v", i, err)
		}
		out[i] = b
	}
	return out, nil
}

// TransparentResult is a transparent statement whose statement and every
// receipt verified.
type TransparentResult struct {
	Statement    *cose.Statement
	ClaimsDigest engine.Digest
	Receipts     []*Verified
}

// VerifyTransparent verifies a transparent statement: the signed statement
// (cose.VerifyStatement at now, or at its iat), then every receipt in header
// 394 — at least one — against the service key that keys holds for its kid,
// each leaf committing to the statement's claims digest.
func VerifyTransparent(ts []byte, keys KeySet, now time.Time) (*TransparentResult, error) {
	st, err := cose.ParseStatement(ts)
	if err != nil {
		return nil, err
	}
	if err := cose.VerifyStatement(st, now); err != nil {
		return nil, err
	}
	digest, err := cose.ClaimsDigest(ts)
	if err != nil {
		return nil, err
	}
	receipts, err := embedded(st.Unprotected)
	if err != nil {
		return nil, err
	}
	if len(receipts) == 0 {
		return nil, invalidReceipt("the statement carries no receipt (unprotected header 394)")
	}
	res := &TransparentResult{Statement: st, ClaimsDigest: digest}
	for i, raw := range receipts {
		r, err := Parse(raw)
		if err != nil {
			return nil, engine.Wrap(engine.KindInvalid, CodeInvalidReceipt, err, "receipt %d", i)
		}
		key, ok := keys.Lookup(r.KeyID)
		if !ok {
			return nil, engine.Errorf(engine.KindInvalid, CodeUnknownServiceKey, "receipt %d: no trusted service key has kid %q", i, truncate(r.KeyID))
		}
		v, err := r.Verify(key)
		if err != nil {
			return nil, err
		}
		if v.Leaf.ClaimsDigest != digest {
			return nil, engine.Errorf(engine.KindInvalid, CodeClaimsDigestMismatch, "receipt %d commits to claims digest %x, the statement's is %x", i, v.Leaf.ClaimsDigest, digest)
		}
		res.Receipts = append(res.Receipts, v)
	}
	return res, nil
}

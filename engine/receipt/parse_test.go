package receipt

import (
	"crypto/elliptic"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
)

// editReceipt decodes a receipt, lets edit change the protected header, the
// unprotected header and the message, and encodes it again.
func editReceipt(t *testing.T, rc []byte, edit func(m *cose.Sign1, phdr, uhdr cose.Header)) []byte {
	t.Helper()
	m, err := cose.DecodeSign1(rc)
	if err != nil {
		t.Fatal(err)
	}
	phdr, err := m.ProtectedHeader()
	if err != nil {
		t.Fatal(err)
	}
	edit(m, phdr, m.Unprotected)
	if m.Protected, err = phdr.Encode(); err != nil {
		t.Fatal(err)
	}
	out, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// withProof replaces the inclusion proof by body.
func withProof(body any) func(*cose.Sign1, cose.Header, cose.Header) {
	return func(_ *cose.Sign1, _, uhdr cose.Header) {
		uhdr.Set(LabelVDP, mustCBOR(map[int64]any{-1: [][]byte{mustCBOR(body)}}))
	}
}

func TestParseReceiptDefects(t *testing.T) {
	svc := newService(t, elliptic.P256())
	leaves, hashes, root := tree(3, nil)
	sig, err := svc.SignRoot(root, engine.TxID{View: 1, Seqno: 4}, testNow, "i", "s")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := Build(sig, leaves[1], naivePath(hashes, 1))
	if err != nil {
		t.Fatal(err)
	}
	wsd, cd := leaves[1].WriteSetDigest[:], leaves[1].ClaimsDigest[:]
	ce := leaves[1].CommitEvidence
	goodLeaf := []any{wsd, ce, cd}
	goodPath := []any{[]any{true, make([]byte, 32)}}
	type edit = func(m *cose.Sign1, phdr, uhdr cose.Header)
	cases := []struct {
		name string
		edit edit
		code string
	}{
		{"unchanged", func(*cose.Sign1, cose.Header, cose.Header) {}, ""},
		{"unknown unprotected header kept", func(_ *cose.Sign1, _, u cose.Header) { u.Set(99, mustCBOR("x")) }, ""},
		{"attached payload", func(m *cose.Sign1, _, _ cose.Header) { m.Payload = root[:] }, CodeInvalidReceipt},
		{"no alg", func(_ *cose.Sign1, p, _ cose.Header) { delete(p, cose.LabelAlg) }, CodeInvalidReceipt},
		{"RS256", func(_ *cose.Sign1, p, _ cose.Header) { p.Set(cose.LabelAlg, mustCBOR(-257)) }, cose.CodeUnsupportedAlgorithm},
		{"crit", func(_ *cose.Sign1, p, _ cose.Header) { p.Set(cose.LabelCrit, mustCBOR([]int{395})) }, CodeInvalidReceipt},
		{"no kid", func(_ *cose.Sign1, p, _ cose.Header) { delete(p, cose.LabelKID) }, CodeInvalidReceipt},
		{"text kid", func(_ *cose.Sign1, p, _ cose.Header) { p.Set(cose.LabelKID, mustCBOR("k")) }, CodeInvalidReceipt},
		{"empty kid", func(_ *cose.Sign1, p, _ cose.Header) { p.Set(cose.LabelKID, mustCBOR([]byte{})) }, CodeInvalidReceipt},
		{"no vds", func(_ *cose.Sign1, p, _ cose.Header) { delete(p, LabelVDS) }, CodeInvalidReceipt},
		{"vds 1 (RFC 9162)", func(_ *cose.Sign1, p, _ cose.Header) { p.Set(LabelVDS, mustCBOR(1)) }, CodeInvalidReceipt},
		{"no CWT claims", func(_ *cose.Sign1, p, _ cose.Header) { delete(p, cose.LabelCWTClaims) }, CodeInvalidReceipt},
		{"no iat", func(_ *cose.Sign1, p, _ cose.Header) { p.Set(cose.LabelCWTClaims, mustCBOR(map[int]string{1: "i"})) }, CodeInvalidReceipt},
		{"iat text", func(_ *cose.Sign1, p, _ cose.Header) { p.Set(cose.LabelCWTClaims, mustCBOR(map[int]string{6: "now"})) }, CodeInvalidReceipt},
		{"iss not text", func(_ *cose.Sign1, p, _ cose.Header) { p.Set(cose.LabelCWTClaims, mustCBOR(map[int]int{1: 1, 6: 5})) }, CodeInvalidReceipt},
		{"iat only", func(_ *cose.Sign1, p, _ cose.Header) { p.Set(cose.LabelCWTClaims, mustCBOR(map[int]int{6: 5})) }, ""},
		{"no ccf.v1", func(_ *cose.Sign1, p, _ cose.Header) { delete(p, LabelCCF) }, CodeInvalidReceipt},
		{"no txid", func(_ *cose.Sign1, p, _ cose.Header) { p.Set(LabelCCF, mustCBOR(map[string]string{})) }, CodeInvalidReceipt},
		{"txid 0.4", func(_ *cose.Sign1, p, _ cose.Header) { p.Set(LabelCCF, mustCBOR(map[string]string{"txid": "0.4"})) }, CodeInvalidReceipt},
		{"txid integer", func(_ *cose.Sign1, p, _ cose.Header) { p.Set(LabelCCF, mustCBOR(map[string]int{"txid": 4})) }, CodeInvalidReceipt},
		{"no proofs", func(_ *cose.Sign1, _, u cose.Header) { delete(u, LabelVDP) }, CodeInvalidReceipt},
		{"proofs not a map", func(_ *cose.Sign1, _, u cose.Header) { u.Set(LabelVDP, mustCBOR([]int{1})) }, CodeInvalidReceipt},
		{"consistency proofs too", func(_ *cose.Sign1, _, u cose.Header) {
			u.Set(LabelVDP, mustCBOR(map[int64]any{-1: [][]byte{mustCBOR(map[int]any{1: goodLeaf, 2: goodPath})}, -2: [][]byte{{0}}}))
		}, CodeInvalidReceipt},
		{"no inclusion proof", func(_ *cose.Sign1, _, u cose.Header) { u.Set(LabelVDP, mustCBOR(map[int64]any{-1: [][]byte{}})) }, CodeInvalidReceipt},
		{"two inclusion proofs", func(_ *cose.Sign1, _, u cose.Header) {
			p := mustCBOR(map[int]any{1: goodLeaf, 2: goodPath})
			u.Set(LabelVDP, mustCBOR(map[int64]any{-1: [][]byte{p, p}}))
		}, CodeInvalidReceipt},
		{"proof not wrapped", func(_ *cose.Sign1, _, u cose.Header) {
			u.Set(LabelVDP, mustCBOR(map[int64]any{-1: []any{map[int]any{1: goodLeaf, 2: goodPath}}}))
		}, CodeInvalidReceipt},
		{"proof without path", withProof(map[int]any{1: goodLeaf}), CodeInvalidReceipt},
		{"proof with extra key", withProof(map[int]any{1: goodLeaf, 2: goodPath, 3: 0}), CodeInvalidReceipt},
		{"empty path", withProof(map[int]any{1: goodLeaf, 2: []any{}}), ""},
		{"leaf of two", withProof(map[int]any{1: []any{wsd, ce}, 2: goodPath}), CodeInvalidReceipt},
		{"short write set digest", withProof(map[int]any{1: []any{wsd[:31], ce, cd}, 2: goodPath}), CodeInvalidReceipt},
		{"long claims digest", withProof(map[int]any{1: []any{wsd, ce, append(cd, 0)}, 2: goodPath}), CodeInvalidReceipt},
		{"evidence as bytes", withProof(map[int]any{1: []any{wsd, []byte(ce), cd}, 2: goodPath}), CodeInvalidReceipt},
		{"empty evidence", withProof(map[int]any{1: []any{wsd, "", cd}, 2: goodPath}), CodeInvalidReceipt},
		{"evidence over 1024 bytes", withProof(map[int]any{1: []any{wsd, string(make([]byte, 1025)), cd}, 2: goodPath}), CodeInvalidReceipt},
		{"path not an array", withProof(map[int]any{1: goodLeaf, 2: map[int]int{}}), CodeInvalidReceipt},
		{"path element of three", withProof(map[int]any{1: goodLeaf, 2: []any{[]any{true, make([]byte, 32), 0}}}), CodeInvalidReceipt},
		{"left as integer", withProof(map[int]any{1: goodLeaf, 2: []any{[]any{1, make([]byte, 32)}}}), CodeInvalidReceipt},
		{"short path hash", withProof(map[int]any{1: goodLeaf, 2: []any{[]any{false, make([]byte, 31)}}}), CodeInvalidReceipt},
		{"path hash as text", withProof(map[int]any{1: goodLeaf, 2: []any{[]any{false, string(make([]byte, 32))}}}), CodeInvalidReceipt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := editReceipt(t, rc, tc.edit)
			_, err := Parse(raw)
			if codeOf(err) != tc.code {
				t.Fatalf("Parse = %v, want code %q", err, tc.code)
			}
			if err != nil && engine.KindOf(err) != engine.KindInvalid {
				t.Fatalf("kind %v", engine.KindOf(err))
			}
		})
	}
	for name, raw := range map[string][]byte{
		"empty":               nil,
		"untagged":            rc[1:],
		"trailing":            append(append([]byte{}, rc...), 0),
		"a map":               mustCBOR(map[int]int{1: 2}),
		"tag 18 around a map": mustCBOR(cbor.Tag{Number: 18, Content: map[int]int{}}),
	} {
		if _, err := Parse(raw); codeOf(err) != CodeInvalidReceipt {
			t.Errorf("%s: %v, want InvalidReceipt", name, err)
		}
	}
}

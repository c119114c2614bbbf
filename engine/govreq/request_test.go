package govreq

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/gavelhq/gavel/engine"
)

var (
	membersOnce sync.Once
	members     map[Algorithm]*Member
)

// testMember is a member made with Keygen and LoadMember, one per algorithm.
func testMember(t testing.TB, alg Algorithm) *Member {
	t.Helper()
	membersOnce.Do(func() {
		members = map[Algorithm]*Member{}
		for _, a := range []Algorithm{ES256, ES384, EdDSA} {
			certPEM, keyPEM, err := Keygen(a.String(), "member-"+a.String())
			if err != nil {
				panic(err)
			}
			m, err := LoadMember(certPEM, keyPEM)
			if err != nil {
				panic(err)
			}
			members[a] = m
		}
	})
	return members[alg]
}

var testTime = time.Unix(testCreatedAt, 0)

const (
	testCreatedAt  = int64(1700000000)
	testProposalID = "6e1d0c1e5e6f4b0b9a1c4b7e0f3a2d5c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"
)

// baseHeader is a valid protected header for m: a proposal.
func baseHeader(m *Member) map[any]any {
	return map[any]any{
		int64(1):        int64(m.Alg),
		int64(4):        []byte(m.ID),
		HeaderMsgType:   "proposal",
		HeaderCreatedAt: testCreatedAt,
	}
}

// envelope encodes 18([protected, unprotected, payload, sig]) with sig made
// by m over protected and payload (when both are byte strings).
func envelope(t testing.TB, m *Member, alg Algorithm, protected any, unprotected any, payload any) []byte {
	t.Helper()
	// A zero signature stands in where m's key cannot sign for alg: those
	// envelopes test key/alg mismatches, caught before the signature.
	sig := make([]byte, max(signatureSize(alg), 64))
	p, okP := protected.([]byte)
	d, okD := payload.([]byte)
	if okP && okD && alg.Supported() {
		if s, err := signSigStructure(m.Key, alg, p, d); err == nil {
			sig = s
		}
	}
	b, err := engine.CBOR.Marshal(cbor.Tag{Number: 18, Content: []any{protected, unprotected, payload, sig}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := engine.CBOR.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// headerEnvelope is a signed request whose protected header is
// baseHeader(m) changed by edit.
func headerEnvelope(t testing.TB, m *Member, edit func(h map[any]any)) []byte {
	t.Helper()
	h := baseHeader(m)
	if edit != nil {
		edit(h)
	}
	alg := m.Alg
	if a, ok := h[int64(1)].(int64); ok && Algorithm(a).Supported() {
		alg = Algorithm(a)
	}
	return envelope(t, m, alg, encode(t, h), map[any]any{}, []byte(`{"actions":[]}`))
}

func TestParseAccepts(t *testing.T) {
	for _, alg := range []Algorithm{ES256, ES384, EdDSA} {
		m := testMember(t, alg)
		cases := []struct {
			name       string
			raw        []byte
			typ        MsgType
			proposalID string
			payload    string
		}{
			{"proposal", headerEnvelope(t, m, nil), MsgProposal, "", `{"actions":[]}`},
			{"ballot", headerEnvelope(t, m, func(h map[any]any) {
				h[HeaderMsgType] = "ballot"
				h[HeaderProposalID] = testProposalID
			}), MsgBallot, testProposalID, `{"actions":[]}`},
			{"withdrawal with an empty payload", envelope(t, m, m.Alg, encode(t, map[any]any{
				int64(1): int64(m.Alg), int64(4): []byte(m.ID), HeaderMsgType: "withdrawal",
				HeaderCreatedAt: int64(0), HeaderProposalID: testProposalID,
			}), map[any]any{}, []byte{}), MsgWithdrawal, testProposalID, ""},
			{"extra headers are ignored", headerEnvelope(t, m, func(h map[any]any) {
				h[int64(3)] = "application/json"
				h["x-client"] = "test"
			}), MsgProposal, "", `{"actions":[]}`},
			{"critical header gavel understands", headerEnvelope(t, m, func(h map[any]any) {
				h[int64(2)] = []any{HeaderCreatedAt}
			}), MsgProposal, "", `{"actions":[]}`},
			{"non-empty unprotected header", envelope(t, m, m.Alg, encode(t, baseHeader(m)),
				map[any]any{int64(33): []byte{1}}, []byte(`{"actions":[]}`)), MsgProposal, "", `{"actions":[]}`},
		}
		for _, c := range cases {
			t.Run(alg.String()+"/"+c.name, func(t *testing.T) {
				r, err := Parse(c.raw, 0)
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if r.Type != c.typ || r.ProposalID != c.proposalID || string(r.Payload) != c.payload ||
					r.KeyID != m.ID || r.Alg != alg || r.Payload == nil || !bytes.Equal(r.Raw, c.raw) {
					t.Fatalf("Parse gave %+v", r)
				}
				if err := r.Verify(m.Cert); err != nil {
					t.Fatalf("Verify: %v", err)
				}
			})
		}
	}
}

func TestParseRefuses(t *testing.T) {
	m := testMember(t, ES256)
	good := headerEnvelope(t, m, nil)
	body := good[1:] // the array without its tag
	payload := []byte(`{"actions":[]}`)
	protected := encode(t, baseHeader(m))
	ballot := func(edit func(h map[any]any)) []byte {
		return headerEnvelope(t, m, func(h map[any]any) {
			h[HeaderMsgType] = "ballot"
			h[HeaderProposalID] = testProposalID
			edit(h)
		})
	}
	cases := []struct {
		name string
		raw  []byte
		code string
	}{
		{"empty", nil, "InvalidCOSE"},
		{"not CBOR", []byte{0xff, 0x00}, "InvalidCOSE"},
		{"JSON", []byte(`{"actions":[]}`), "InvalidCOSE"},
		{"truncated", good[:len(good)-1], "InvalidCOSE"},
		{"truncated in the header", good[:10], "InvalidCOSE"},
		{"trailing bytes", append(bytes.Clone(good), 0x00), "InvalidCOSE"},
		{"untagged", body, "InvalidCOSE"},
		{"tag 98 (COSE_Sign)", append([]byte{0xd8, 98}, body...), "InvalidCOSE"},
		{"tag 17 (COSE_Mac0)", append([]byte{0xd1}, body...), "InvalidCOSE"},
		{"tagged twice", append([]byte{0xd2}, good...), "InvalidCOSE"},
		{"three elements", encode(t, cbor.Tag{Number: 18, Content: []any{protected, map[any]any{}, payload}}), "InvalidCOSE"},
		{"five elements", encode(t, cbor.Tag{Number: 18, Content: []any{protected, map[any]any{}, payload, []byte{1}, []byte{2}}}), "InvalidCOSE"},
		{"not an array", encode(t, cbor.Tag{Number: 18, Content: map[any]any{1: 2}}), "InvalidCOSE"},
		{"protected is a map, not a bstr", envelope(t, m, m.Alg, baseHeader(m), map[any]any{}, payload), "InvalidCOSE"},
		{"protected bstr holds an array", envelope(t, m, m.Alg, encode(t, []any{1, 2}), map[any]any{}, payload), "InvalidCOSE"},
		{"protected has a duplicate label", envelope(t, m, m.Alg, []byte{0xa2, 0x01, 0x26, 0x01, 0x26}, map[any]any{}, payload), "InvalidCOSE"},
		{"unprotected is not a map", envelope(t, m, m.Alg, protected, []any{}, payload), "InvalidCOSE"},
		{"detached payload", envelope(t, m, m.Alg, protected, map[any]any{}, nil), "InvalidCOSE"},
		{"payload is text", envelope(t, m, m.Alg, protected, map[any]any{}, `{"actions":[]}`), "InvalidCOSE"},
		{"signature is text", encode(t, cbor.Tag{Number: 18, Content: []any{protected, map[any]any{}, payload, "sig"}}), "InvalidCOSE"},
		{"indefinite-length array", append([]byte{0xd2, 0x9f}, append(body[1:], 0xff)...), "InvalidCOSE"},

		{"alg missing", headerEnvelope(t, m, func(h map[any]any) { delete(h, int64(1)) }), "MissingHeader"},
		{"alg only unprotected", envelope(t, m, m.Alg, encode(t, func() map[any]any { h := baseHeader(m); delete(h, int64(1)); return h }()),
			map[any]any{int64(1): int64(ES256)}, payload), "MissingHeader"},
		{"alg in both headers", envelope(t, m, m.Alg, protected, map[any]any{int64(1): int64(ES256)}, payload), "InvalidHeader"},
		{"alg ES512", headerEnvelope(t, m, func(h map[any]any) { h[int64(1)] = int64(-36) }), "UnsupportedAlgorithm"},
		{"alg RS256", headerEnvelope(t, m, func(h map[any]any) { h[int64(1)] = int64(-257) }), "UnsupportedAlgorithm"},
		{"alg PS256", headerEnvelope(t, m, func(h map[any]any) { h[int64(1)] = int64(-37) }), "UnsupportedAlgorithm"},
		{"alg as text", headerEnvelope(t, m, func(h map[any]any) { h[int64(1)] = "ES256" }), "UnsupportedAlgorithm"},
		{"alg huge", headerEnvelope(t, m, func(h map[any]any) { h[int64(1)] = uint64(math.MaxUint64) }), "UnsupportedAlgorithm"},

		{"kid missing", headerEnvelope(t, m, func(h map[any]any) { delete(h, int64(4)) }), "MissingHeader"},
		{"kid only unprotected", envelope(t, m, m.Alg, encode(t, func() map[any]any { h := baseHeader(m); delete(h, int64(4)); return h }()),
			map[any]any{int64(4): []byte(m.ID)}, payload), "MissingHeader"},
		{"kid as text", headerEnvelope(t, m, func(h map[any]any) { h[int64(4)] = m.ID }), "InvalidHeader"},
		{"kid not hex", headerEnvelope(t, m, func(h map[any]any) { h[int64(4)] = []byte(strings.Repeat("zz", 32)) }), "InvalidHeader"},
		{"kid upper-case hex", headerEnvelope(t, m, func(h map[any]any) { h[int64(4)] = []byte(strings.ToUpper(m.ID)) }), "InvalidHeader"},
		{"kid is the raw digest", headerEnvelope(t, m, func(h map[any]any) {
			d, _ := hex.DecodeString(m.ID)
			h[int64(4)] = d
		}), "InvalidHeader"},
		{"kid too short", headerEnvelope(t, m, func(h map[any]any) { h[int64(4)] = []byte(m.ID[:62]) }), "InvalidHeader"},

		{"type missing", headerEnvelope(t, m, func(h map[any]any) { delete(h, HeaderMsgType) }), "MissingHeader"},
		{"type unknown", headerEnvelope(t, m, func(h map[any]any) { h[HeaderMsgType] = "vote" }), "InvalidHeader"},
		{"type CCF recovery_share", headerEnvelope(t, m, func(h map[any]any) { h[HeaderMsgType] = "recovery_share" }), "InvalidHeader"},
		{"type wrong case", headerEnvelope(t, m, func(h map[any]any) { h[HeaderMsgType] = "Proposal" }), "InvalidHeader"},
		{"type as bytes", headerEnvelope(t, m, func(h map[any]any) { h[HeaderMsgType] = []byte("proposal") }), "InvalidHeader"},
		{"type as int", headerEnvelope(t, m, func(h map[any]any) { h[HeaderMsgType] = 1 }), "InvalidHeader"},

		{"created_at missing", headerEnvelope(t, m, func(h map[any]any) { delete(h, HeaderCreatedAt) }), "MissingHeader"},
		{"created_at text", headerEnvelope(t, m, func(h map[any]any) { h[HeaderCreatedAt] = "1700000000" }), "InvalidHeader"},
		{"created_at ISO text", headerEnvelope(t, m, func(h map[any]any) { h[HeaderCreatedAt] = "2023-11-14T22:13:20Z" }), "InvalidHeader"},
		{"created_at negative", headerEnvelope(t, m, func(h map[any]any) { h[HeaderCreatedAt] = int64(-1) }), "InvalidHeader"},
		{"created_at float", headerEnvelope(t, m, func(h map[any]any) { h[HeaderCreatedAt] = 1700000000.0 }), "InvalidHeader"},
		{"created_at over int64", headerEnvelope(t, m, func(h map[any]any) { h[HeaderCreatedAt] = uint64(math.MaxInt64) + 1 }), "InvalidHeader"},
		{"created_at tagged epoch", headerEnvelope(t, m, func(h map[any]any) { h[HeaderCreatedAt] = cbor.Tag{Number: 1, Content: testCreatedAt} }), "InvalidHeader"},

		{"ballot without proposal_id", headerEnvelope(t, m, func(h map[any]any) { h[HeaderMsgType] = "ballot" }), "MissingHeader"},
		{"withdrawal without proposal_id", headerEnvelope(t, m, func(h map[any]any) { h[HeaderMsgType] = "withdrawal" }), "MissingHeader"},
		{"proposal_id not hex", ballot(func(h map[any]any) { h[HeaderProposalID] = strings.Repeat("g", 64) }), "InvalidHeader"},
		{"proposal_id upper-case", ballot(func(h map[any]any) { h[HeaderProposalID] = strings.ToUpper(testProposalID) }), "InvalidHeader"},
		{"proposal_id short", ballot(func(h map[any]any) { h[HeaderProposalID] = testProposalID[:63] }), "InvalidHeader"},
		{"proposal_id as bytes", ballot(func(h map[any]any) { h[HeaderProposalID] = []byte(testProposalID) }), "InvalidHeader"},
		{"proposal with a proposal_id", headerEnvelope(t, m, func(h map[any]any) { h[HeaderProposalID] = testProposalID }), "InvalidHeader"},

		{"crit names an unknown header", headerEnvelope(t, m, func(h map[any]any) {
			h["x-must-understand"] = 1
			h[int64(2)] = []any{"x-must-understand"}
		}), "InvalidHeader"},
		{"crit names an absent header", headerEnvelope(t, m, func(h map[any]any) { h[int64(2)] = []any{HeaderProposalID} }), "InvalidHeader"},
		{"crit empty", headerEnvelope(t, m, func(h map[any]any) { h[int64(2)] = []any{} }), "InvalidHeader"},
		{"crit unprotected", envelope(t, m, m.Alg, protected, map[any]any{int64(2): []any{HeaderMsgType}}, payload), "InvalidHeader"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Parse(c.raw, 0)
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", r)
			}
			e := engine.AsError(err)
			if e.Code != c.code || e.Kind != engine.KindInvalid {
				t.Fatalf("got %v (kind %d), want %s", err, e.Kind, c.code)
			}
		})
	}
}

func TestParseSizeLimit(t *testing.T) {
	m := testMember(t, ES256)
	raw := headerEnvelope(t, m, nil)
	if _, err := Parse(raw, len(raw)); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	_, err := Parse(raw, len(raw)-1)
	if e := engine.AsError(err); e.Code != "RequestTooLarge" || e.Kind != engine.KindTooLarge {
		t.Fatalf("over the limit: got %v", err)
	}
	big := envelope(t, m, m.Alg, encode(t, baseHeader(m)), map[any]any{}, make([]byte, DefaultMaxSize))
	if _, err := Parse(big, 0); codeOf(err) != "RequestTooLarge" {
		t.Fatalf("over DefaultMaxSize: got %v", err)
	}
}

func TestParseOwnsItsBytes(t *testing.T) {
	m := testMember(t, ES256)
	raw := headerEnvelope(t, m, nil)
	r, err := Parse(raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := ProposalID(raw)
	for i := range raw {
		raw[i] = 0
	}
	if ProposalID(r.Raw) != want {
		t.Fatal("Request.Raw shares the caller's buffer")
	}
	if err := r.Verify(m.Cert); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	es256, es384, eddsa := testMember(t, ES256), testMember(t, ES384), testMember(t, EdDSA)
	otherCert, otherKey, err := Keygen("ES256", "other")
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadMember(otherCert, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"actions":[]}`)
	// forged makes an envelope naming member m, with alg, signed by signer.
	forged := func(m *Member, alg Algorithm, signer *Member) []byte {
		h := baseHeader(m)
		h[int64(1)] = int64(alg)
		return envelope(t, signer, alg, encode(t, h), map[any]any{}, payload)
	}
	flip := func(raw []byte, at int) []byte {
		b := bytes.Clone(raw)
		b[at] ^= 0x01
		return b
	}
	good := headerEnvelope(t, es256, nil)
	payloadAt := bytes.Index(good, payload)
	cases := []struct {
		name string
		raw  []byte
		cert *Member
	}{
		{"signature bit flipped", flip(good, len(good)-1), es256},
		{"payload byte changed", flip(good, payloadAt+2), es256},
		{"created_at changed", flip(good, bytes.Index(good, []byte{0x1a, 0x65, 0x53, 0xf1, 0x00})+4), es256},
		{"another member's certificate", good, es384},
		{"signed by another member's key", forged(es256, ES256, other), es256},
		{"ES384 header, P-256 key", forged(es256, ES384, es256), es256},
		{"ES256 header, P-384 key", forged(es384, ES256, es384), es384},
		{"EdDSA header, P-256 key", forged(es256, EdDSA, es256), es256},
		{"ES256 header, Ed25519 key", forged(eddsa, ES256, eddsa), eddsa},
		{"signature too short", envelopeWithSig(t, es256, payload, make([]byte, 63)), es256},
		{"signature empty", envelopeWithSig(t, es256, payload, []byte{}), es256},
		{"signature all zero", envelopeWithSig(t, es256, payload, make([]byte, 64)), es256},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Parse(c.raw, 0)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = r.Verify(c.cert.Cert)
			if e := engine.AsError(err); err == nil || e.Code != "InvalidSignature" || e.Kind != engine.KindUnauthorized {
				t.Fatalf("got %v, want InvalidSignature (KindUnauthorized)", err)
			}
		})
	}
	r, err := Parse(good, 0)
	if err != nil {
		t.Fatal(err)
	}
	if codeOf(r.Verify(other.Cert)) != "InvalidSignature" {
		t.Fatal("Verify with another ES256 member's certificate did not refuse")
	}
	if codeOf(r.Verify(nil)) != "InvalidSignature" {
		t.Fatal("Verify(nil) did not refuse")
	}
}

func envelopeWithSig(t *testing.T, m *Member, payload, sig []byte) []byte {
	return encode(t, cbor.Tag{Number: 18, Content: []any{encode(t, baseHeader(m)), map[any]any{}, payload, sig}})
}

// TestContentIDSurvivesMalleation shows why replay checks key on ContentID:
// anyone can turn an ECDSA signature (r, s) into (r, n−s), which verifies
// too but makes a different envelope and so a different ProposalID.
func TestContentIDSurvivesMalleation(t *testing.T) {
	m := testMember(t, ES256)
	raw, err := m.Sign(MsgProposal, "", time.Unix(testCreatedAt, 0), []byte(`{"actions":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := m.Cert.PublicKey.(*ecdsa.PublicKey).Curve.Params().N
	s := new(big.Int).SetBytes(r.Signature[32:])
	twin := bytes.Clone(raw)
	new(big.Int).Sub(n, s).FillBytes(twin[len(twin)-32:])
	r2, err := Parse(twin, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Verify(m.Cert); err != nil {
		t.Fatalf("the (r, n−s) twin does not verify: %v", err)
	}
	if ProposalID(raw) == ProposalID(twin) {
		t.Fatal("twin has the same proposal id")
	}
	if r.ContentID() != r2.ContentID() {
		t.Fatal("twin has a different content id")
	}
	want := sha256.Sum256(appendSigStructure(nil, r.Protected, nil, r.Payload))
	if r.ContentID() != hex.EncodeToString(want[:]) {
		t.Fatal("ContentID is not SHA-256 of the Sig_structure")
	}
}

func TestProposalIDAndMemberID(t *testing.T) {
	m := testMember(t, ES256)
	sum := sha256.Sum256(m.Cert.Raw)
	if m.ID != hex.EncodeToString(sum[:]) || MemberID(m.Cert) != m.ID {
		t.Fatal("member id is not the hex SHA-256 of the certificate DER")
	}
	if got := ProposalID([]byte("abc")); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("ProposalID(abc) = %s", got)
	}
}

func TestVerifySign1Refuses(t *testing.T) {
	m := testMember(t, ES256)
	payload := []byte("x")
	protected := encode(t, map[any]any{int64(1): int64(ES256)})
	good := envelope(t, m, ES256, protected, map[any]any{}, payload)
	cases := []struct {
		name string
		raw  []byte
		pub  crypto.PublicKey
		code string
	}{
		{"a good message", good, m.Cert.PublicKey, ""},
		{"no alg anywhere", envelope(t, m, ES256, []byte{}, map[any]any{}, payload), m.Cert.PublicKey, "MissingHeader"},
		{"detached payload", envelope(t, m, ES256, protected, map[any]any{}, nil), m.Cert.PublicKey, "InvalidCOSE"},
		{"alg in both headers", envelope(t, m, ES256, protected, map[any]any{int64(1): int64(ES256)}, payload), m.Cert.PublicKey, "InvalidHeader"},
		{"P-384 key", good, testMember(t, ES384).Cert.PublicKey, "InvalidSignature"},
		{"Ed25519 key", good, testMember(t, EdDSA).Cert.PublicKey, "InvalidSignature"},
		{"no key", good, nil, "InvalidSignature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if code := codeOf(VerifySign1(c.raw, c.pub, nil)); code != c.code {
				t.Fatalf("got %q, want %q", code, c.code)
			}
		})
	}
}

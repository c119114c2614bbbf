package govreq

import (
	"testing"
)

func benchmarkVerify(b *testing.B, alg Algorithm) {
	m := testMember(b, alg)
	raw, err := m.Sign(MsgBallot, testProposalID, testTime, []byte(`{"ballot":"export function vote(proposal, proposerId) { return true }"}`))
	if err != nil {
		b.Fatal(err)
	}
	r, err := Parse(raw, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Verify(m.Cert); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyES256 is the signature check per ballot: the ceiling on
// ballots per second per core.
func BenchmarkVerifyES256(b *testing.B) { benchmarkVerify(b, ES256) }
func BenchmarkVerifyES384(b *testing.B) { benchmarkVerify(b, ES384) }
func BenchmarkVerifyEdDSA(b *testing.B) { benchmarkVerify(b, EdDSA) }

// BenchmarkParse is the structural parse of a CCF-client proposal.
func BenchmarkParse(b *testing.B) {
	raw := readFixture(b, "ccf-python", "proposal.cose")
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Parse(raw, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifySign1ES256 is the low-level path: decode and verify.
func BenchmarkVerifySign1ES256(b *testing.B) {
	m := testMember(b, ES256)
	raw, err := m.Sign(MsgProposal, "", testTime, []byte(`{"actions":[]}`))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifySign1(raw, m.Cert.PublicKey, nil); err != nil {
			b.Fatal(err)
		}
	}
}

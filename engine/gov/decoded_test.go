package gov

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/gavelhq/gavel/engine/constitution"
)

// FuzzDecodedForm: a record encoded with its answer is byte for byte the
// record json.Marshal writes, and the decoded form its writer keeps is
// exactly what decoding it yields, or nothing is kept. Each input builds a
// proposal whose text fields, maps and slices may be empty, nil or hold
// invalid UTF-8.
func FuzzDecodedForm(f *testing.F) {
	f.Add("p1", "m1", "Open", "2.5", `{"actions":[]}`, "m2", "export function vote() { return true; }", "", uint8(0))
	f.Add("p1", "m1", "Accepted", "2.5", `{"actions":[{"name":"x","args":{"a":"<&>"}}]}`, "m2", "b", "", uint8(0xff))
	f.Add("p1", "m1", "Failed", "", "", "", "", "resolve: ScriptThrew: boom", uint8(0x2a))
	f.Add("p\xff", "m1", "Open", "1.1", "\u2028", "m\xfe", "x", "", uint8(0x11))
	f.Fuzz(func(t *testing.T, id, proposer, state, txid, body, member, ballot, failure string, shape uint8) {
		p := &Proposal{ProposalID: id, ProposerID: proposer, State: state, CreatedTxID: txid, Body: body, BallotCount: int(shape)}
		bit := func(i uint) bool { return shape&(1<<i) != 0 }
		if bit(0) {
			p.Ballots = map[string]string{}
			if bit(1) {
				p.Ballots[member] = ballot
			}
		}
		if bit(2) {
			p.BallotSubmitters = []string{}
			if bit(3) {
				p.BallotSubmitters = append(p.BallotSubmitters, member)
			}
		}
		if bit(4) {
			p.FinalVotes = map[string]bool{}
			if bit(5) {
				p.FinalVotes[member] = bit(1)
			}
		}
		if bit(6) {
			p.VoteFailures = map[string]VoteFailure{}
			if bit(7) {
				p.VoteFailures[member] = VoteFailure{Reason: failure}
			}
		}
		if failure != "" {
			p.Failure = &Failure{Reason: failure}
		}
		answer, b := p.encodeBoth()
		if want, _ := json.Marshal(record{Proposal: *p, CreatedTxID: p.CreatedTxID, Body: p.Body, Ballots: p.Ballots}); !bytes.Equal(b, want) {
			t.Fatalf("record\n%s\nwant\n%s", b, want)
		}
		if want, _ := json.Marshal(p); !bytes.Equal(answer, want) {
			t.Fatalf("answer\n%s\nwant\n%s", answer, want)
		}
		recordCacheOff.Store(true)
		defer recordCacheOff.Store(false)
		got, ok, err := loadProposal(constitution.MemState{TableProposals: {id: b}}, id)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		kept, ok := decodedForm(p)
		if !ok {
			return
		}
		if !reflect.DeepEqual(kept, got) {
			t.Fatalf("kept %#v\ndecoded %#v", kept, got)
		}
	})
}

// TestDecodedRecordsAreCopies: a record loaded from the cache is a copy,
// and changing it changes neither the cache nor the writer's proposal.
func TestDecodedRecordsAreCopies(t *testing.T) {
	p := &Proposal{ProposalID: "p", ProposerID: "m", State: StateOpen, Body: "{}",
		Ballots: map[string]string{"m": "b"}, BallotSubmitters: []string{"m"}, FinalVotes: map[string]bool{"m": true}}
	st := constitution.MemState{TableProposals: {"p": p.encode()}}
	hits := DecodedRecordsReused()
	a, _, _ := loadProposal(st, "p")
	if DecodedRecordsReused() != hits+1 {
		t.Fatal("the record just written was decoded again")
	}
	a.Ballots["n"] = "c"
	a.BallotSubmitters[0] = "x"
	a.FinalVotes["m"] = false
	b, _, _ := loadProposal(st, "p")
	if len(b.Ballots) != 1 || b.BallotSubmitters[0] != "m" || !b.FinalVotes["m"] || len(p.Ballots) != 1 || p.BallotSubmitters[0] != "m" {
		t.Fatalf("a change to a loaded copy leaked: %+v / %+v", b, p)
	}
}

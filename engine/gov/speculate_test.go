package gov_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
)

// specService is a three-member service with the default constitution, in
// memory, whose requests are signed at now.
type specService struct {
	t       *testing.T
	members []*govreq.Member
	st      constitution.MemState
	now     time.Time
	seq     uint64
}

func newSpecService(t *testing.T) *specService {
	s := &specService{t: t, st: constitution.MemState{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), seq: 1}
	var initial []gov.InitialMember
	for i := range 3 {
		c, k, err := govreq.Keygen("ES256", fmt.Sprint("m", i))
		if err != nil {
			t.Fatal(err)
		}
		m, _ := govreq.LoadMember(c, k)
		s.members = append(s.members, m)
		initial = append(initial, gov.InitialMember{CertPEM: c})
	}
	module, err := constitution.DefaultModule()
	if err != nil {
		t.Fatal(err)
	}
	ws, err := gov.GenesisWrites(initial, module, gov.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	s.st.Apply(ws)
	return s
}

func (s *specService) command(m int, typ govreq.MsgType, proposalID string, payload string) engine.Command {
	raw, err := s.members[m].Sign(typ, proposalID, s.now, []byte(payload))
	if err != nil {
		s.t.Fatal(err)
	}
	req, err := gov.Verify(s.st, raw, typ, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	return gov.Command(req, constitution.Limits{Timeout: constitution.MaxTimeout})
}

// execAt executes cmd on st at time at, applies its writes and returns the
// effect, or the error's code.
func execAt(t *testing.T, st constitution.MemState, seq uint64, at time.Time, cmd engine.Command) (engine.Effect, string) {
	eff, err := cmd.Execute(st, engine.Facts{TxID: engine.TxID{View: 1, Seqno: seq}, Time: at})
	if err != nil {
		return engine.Effect{}, engine.AsError(err).Code
	}
	st.Apply(eff.Writes)
	return eff, ""
}

func (s *specService) propose(body string) string {
	cmd := s.command(0, govreq.MsgProposal, "", body)
	s.seq++
	eff, code := execAt(s.t, s.st, s.seq, s.now, cmd)
	if code != "" {
		s.t.Fatal(code)
	}
	var p gov.Proposal
	_ = json.Unmarshal(eff.Result, &p)
	return p.ProposalID
}

func clone(st constitution.MemState) constitution.MemState {
	c := constitution.MemState{}
	for t, kv := range st {
		for k, v := range kv {
			c.Apply(engine.WriteSet{{Table: t, Key: k, Value: v}})
		}
	}
	return c
}

const yes = `{"ballot":"export function vote() { return true; }"}`

// TestSpeculationIsTheExecution speculates a batch of votes on the state
// before them, then executes them in order as the sequencer does, and
// executes the same votes with speculation off on a copy of the state:
// every effect and error must be the same. The batch holds a stale
// speculation (two votes on one proposal: the second's read of the record
// changed), two accepting votes on other proposals (the open count each
// writes changed after speculating: it is read at replay), a ballot that
// reads the time (never kept) and a vote executed after its created_at
// left the window (refused, as without speculation).
func TestSpeculationIsTheExecution(t *testing.T) {
	defer gov.SetSpeculation(true)
	s := newSpecService(t)
	body := func(i int) string {
		return fmt.Sprintf(`{"actions":[{"name":"set_node_join_policy","args":{"policy":"export function apply() { return true; } // %d"}}]}`, i)
	}
	a, b, c, d, e := s.propose(body(1)), s.propose(body(2)), s.propose(body(3)), s.propose(body(4)), s.propose(body(5))
	// b and c have one vote for already: the next accepts them.
	for _, id := range []string{b, c} {
		s.seq++
		if _, code := execAt(t, s.st, s.seq, s.now, s.command(1, govreq.MsgBallot, id, yes)); code != "" {
			t.Fatal(code)
		}
	}
	timed := `{"ballot":"export function vote() { return Date.now() > 0; }"}`
	batch := []engine.Command{
		s.command(1, govreq.MsgBallot, a, yes),
		s.command(2, govreq.MsgBallot, a, yes), // stale: the first changes a's record
		s.command(2, govreq.MsgBallot, b, yes), // accepts b
		s.command(2, govreq.MsgBallot, c, yes), // accepts c: the open count changed
		s.command(1, govreq.MsgBallot, d, timed),
	}
	late := s.command(2, govreq.MsgBallot, e, yes)
	plain := clone(s.st)

	gov.SetSpeculation(true)
	replayed := gov.SpeculationsReplayed()
	for _, cmd := range append(batch, late) {
		gov.Speculate(s.st, cmd, s.now)
	}
	var got []engine.Effect
	var codes []string
	seq := s.seq
	at := s.now.Add(time.Second)
	for i, cmd := range append(batch, late) {
		if i == len(batch) {
			at = s.now.Add(time.Hour) // past the replay window
		}
		seq++
		eff, code := execAt(t, s.st, seq, at, cmd)
		got, codes = append(got, eff), append(codes, code)
	}
	if n := gov.SpeculationsReplayed() - replayed; n != 3 {
		t.Fatalf("%d speculations replayed; want 3 (the first vote on a, those on b and c)", n)
	}

	gov.SetSpeculation(false)
	seq = s.seq
	at = s.now.Add(time.Second)
	for i, cmd := range append(batch, late) {
		if i == len(batch) {
			at = s.now.Add(time.Hour)
		}
		seq++
		eff, code := execAt(t, plain, seq, at, cmd)
		if code != codes[i] || !reflect.DeepEqual(eff, got[i]) {
			t.Fatalf("request %d: with speculation %q, %d writes, %s\nwithout %q, %d writes, %s", i, codes[i], len(got[i].Writes), got[i].Result, code, len(eff.Writes), eff.Result)
		}
	}
	if codes[len(batch)] != "ProposalCreatedTooLongAgo" {
		t.Fatalf("the late vote: %q", codes[len(batch)])
	}
	if !reflect.DeepEqual(plain, s.st) {
		t.Fatal("the states differ")
	}
}

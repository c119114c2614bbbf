package gov

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/internal/bounded"
)

// VerifiedRequest is a governance request whose envelope parsed and whose
// signature verified against the certificate of the member its kid names.
type VerifiedRequest struct{ *govreq.Request }

// Verify is the stateless half of a governance request: parse, check the
// message type, find the member's certificate and check the signature.
// members is the current state; Execute re-checks membership in order.
// A verified proposal's join policies are compiled here too
// (warmJoinPolicies), and what Execute reads first is read ahead (readAhead).
func Verify(members engine.StateReader, raw []byte, want govreq.MsgType, maxSize int) (VerifiedRequest, error) {
	req, err := govreq.Parse(raw, maxSize)
	if err != nil {
		return VerifiedRequest{}, err
	}
	if req.Type != want {
		return VerifiedRequest{}, engine.Errorf(engine.KindInvalid, "InvalidHeader",
			"ccf.gov.msg.type is %q; this endpoint takes %q", req.Type, want)
	}
	m, ok, err := LoadMember(members, req.KeyID)
	if err != nil {
		return VerifiedRequest{}, err
	}
	if !ok {
		return VerifiedRequest{}, errUnknownMember(req.KeyID)
	}
	cert, err := parseCert(m.Cert)
	if err != nil {
		return VerifiedRequest{}, engine.Wrap(engine.KindInternal, "InternalError", err, "member %s certificate", req.KeyID)
	}
	if err := req.Verify(cert); err != nil {
		// CCF answers every authentication failure alike.
		return VerifiedRequest{}, engine.Wrap(engine.KindUnauthorized, CodeInvalidAuthenticationInfo, err, "the signature does not verify")
	}
	if req.Type == govreq.MsgProposal {
		warmJoinPolicies(req.Payload)
	}
	readAhead(members, req)
	return VerifiedRequest{req}, nil
}

// readAhead reads, off the sequencer's path, the records Execute reads
// first that are seldom read before: the request's replay record (almost
// always absent) and the proposal a ballot or withdrawal names. A store
// with a read cache (state.Store) keeps the answers for the execution,
// unless a commit writes them meanwhile; nothing is decided here.
func readAhead(st engine.StateReader, req *govreq.Request) {
	_, _, _ = st.Get(TableRequests, req.ContentID())
	if req.ProposalID != "" {
		_, _, _ = st.Get(TableProposals, req.ProposalID)
	}
}

// warmJoinPolicies compiles the policy of each set_node_join_policy action
// of a proposal, off the sequencer's path (Verify runs on the request's
// goroutine), so that validate's gavel.constitution.checkJoinPolicy finds
// it compiled (constitution.CompileJoinPolicy keeps outcomes by source).
// Nothing is decided here: a body that does not parse, or a policy that
// does not compile, is left to Execute.
func warmJoinPolicies(payload []byte) {
	var body struct {
		Actions []struct {
			Name string `json:"name"`
			Args struct {
				Policy *string `json:"policy"`
			} `json:"args"`
		} `json:"actions"`
	}
	if json.Unmarshal(payload, &body) != nil {
		return
	}
	for _, a := range body.Actions {
		if a.Name == "set_node_join_policy" && a.Args.Policy != nil && *a.Args.Policy != "" {
			_, _ = constitution.CompileJoinPolicy(*a.Args.Policy)
		}
	}
}

// memberCerts keeps parsed member certificates by their PEM text: every
// request is verified against its member's, and parsing costs about as
// much as executing a ballot. Certificates are immutable once parsed.
var memberCerts = bounded.New[string, *x509.Certificate](1024)

func parseCert(p string) (*x509.Certificate, error) {
	if c, ok := memberCerts.Get(p); ok {
		return c, nil
	}
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		return nil, errors.New("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, err
	}
	if len(p) <= maxParsedBytes {
		memberCerts.Put(p, c)
	}
	return c, nil
}

// Command is the command a verified request asks for.
func Command(req VerifiedRequest, limits constitution.Limits) engine.Command {
	switch req.Type {
	case govreq.MsgProposal:
		return Propose{Req: req, Limits: limits}
	case govreq.MsgBallot:
		return Vote{Req: req, Limits: limits}
	case govreq.MsgStateDigest:
		return UpdateStateDigest{Req: req}
	case govreq.MsgAck:
		return Ack{Req: req}
	default:
		return Withdraw{Req: req, Limits: limits}
	}
}

// Propose creates a proposal.
type Propose struct {
	Req    VerifiedRequest
	Limits constitution.Limits
}

// Vote submits a member's ballot.
type Vote struct {
	Req    VerifiedRequest
	Limits constitution.Limits
}

// Withdraw withdraws an open proposal; only its proposer may.
type Withdraw struct {
	Req    VerifiedRequest
	Limits constitution.Limits
}

func (c Propose) Kind() engine.EntryKind  { return engine.KindGovProposal }
func (c Vote) Kind() engine.EntryKind     { return engine.KindGovBallot }
func (c Withdraw) Kind() engine.EntryKind { return engine.KindGovWithdrawal }
func (c Propose) Input() []byte           { return c.Req.Raw }
func (c Vote) Input() []byte              { return c.Req.Raw }
func (c Withdraw) Input() []byte          { return c.Req.Raw }

// run is one execution: the state, the facts and the writes so far.
type run struct {
	st     engine.StateReader
	facts  engine.Facts
	limits constitution.Limits
	cfg    Config                      // the service configuration, read by begin
	opts   constitution.RuntimeOptions // the script budget in force, read by begin
	writes engine.WriteSet
	// openDelta is how the number of open proposals changes; the count is
	// kept so that creating a proposal does not scan them.
	openDelta int
	// recorded is the last proposal recorded and its answer, which finish
	// reuses.
	recorded struct {
		p      *Proposal
		answer []byte
	}
}

// begin does what every request does first. A request whose signed
// content the ledger already holds gets its first answer (replayed); then
// the signer must be an active member and created_at inside the window of
// the service configuration, which it keeps for the command.
func (r *run) begin(req VerifiedRequest) (replayed []byte, err error) {
	return r.beginAs(req, true)
}

// beginAs is begin; activeOnly false also admits an Accepted member (the
// state-digest requests that activate it).
func (r *run) beginAs(req VerifiedRequest, activeOnly bool) (replayed []byte, err error) {
	if prev, ok, err := r.st.Get(TableRequests, req.ContentID()); err != nil || ok {
		if ok && prev == nil {
			prev = []byte{}
		}
		return prev, err
	}
	m, ok, err := LoadMember(r.st, req.KeyID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errUnknownMember(req.KeyID)
	}
	if activeOnly && m.Status != constitution.MemberActive {
		return nil, engine.Errorf(engine.KindUnauthorized, CodeInvalidAuthenticationInfo, "Signer is not an ACTIVE member (member %s is %s)", req.KeyID, m.Status)
	}
	if r.cfg, err = loadConfig(r.st); err != nil {
		return nil, err
	}
	if r.opts, err = constitution.LoadRuntimeOptions(r.st); err != nil {
		return nil, err
	}
	window := time.Duration(r.cfg.ReplayWindowSeconds) * time.Second
	return nil, govreq.CheckCreatedAt(req.CreatedAt, r.facts.Time, window)
}

// env is what scripts run with: the budget from the ledger, the safety
// net from the command (the process's settings).
func (r *run) env() constitution.Env {
	return constitution.Env{Time: r.facts.Time, State: r.st, Limits: r.opts.Apply(r.limits)}
}

// refusal reports whether a script error must refuse the request instead
// of becoming its recorded outcome: a tripped safety net, a storage
// failure or a fault of gavel is not a result.
func refusal(err error) bool {
	return errors.Is(err, constitution.ErrSafetyLimit) || engine.KindOf(err) != engine.KindInvalid
}

// reason is the recorded text of a script failure: code and message only,
// never a wrapped cause (compiler text may change between builds).
func reason(err error) string {
	e := engine.AsError(err)
	return e.Code + ": " + e.Message
}

// finish records the answer under the request's content id, and the new
// count of open proposals.
func (r *run) finish(req VerifiedRequest, p *Proposal) (engine.Effect, error) {
	if r.recorded.p == p {
		return r.finishWith(req, r.recorded.answer)
	}
	res, err := json.Marshal(p)
	if err != nil {
		return engine.Effect{}, err
	}
	return r.finishWith(req, res)
}

// finishWith is finish with any answer.
func (r *run) finishWith(req VerifiedRequest, res []byte) (engine.Effect, error) {
	if r.openDelta != 0 {
		n, err := openCount(r.st)
		if err != nil {
			return engine.Effect{}, err
		}
		r.writes = append(r.writes, engine.Write{Table: TableCounters, Key: "open", Value: []byte(strconv.Itoa(n + r.openDelta))})
	}
	r.writes = append(r.writes, engine.Write{Table: TableRequests, Key: req.ContentID(), Value: res})
	return engine.Effect{Writes: r.writes, Result: res}, nil
}

func (c Propose) Execute(st engine.StateReader, f engine.Facts) (engine.Effect, error) {
	r := &run{st: st, facts: f, limits: c.Limits}
	if prev, err := r.begin(c.Req); err != nil || prev != nil {
		return engine.Effect{Replayed: prev != nil, Result: prev}, err
	}
	open, err := openCount(st)
	if err != nil {
		return engine.Effect{}, err
	}
	if open >= r.cfg.MaxOpenProposals {
		return engine.Effect{}, engine.Errorf(engine.KindConflict, "TooManyOpenProposals",
			"%d proposals are open, the most the service configuration allows", open)
	}
	con, err := Constitution(st)
	if err != nil {
		return engine.Effect{}, err
	}
	body := string(c.Req.Payload)
	v, err := con.Validate(r.env(), body)
	if err != nil {
		if refusal(err) {
			return engine.Effect{}, err
		}
		return engine.Effect{}, engine.Errorf(engine.KindInvalid, "ProposalFailedToValidate", "validate failed: %s", reason(err))
	}
	if !v.Valid {
		return engine.Effect{}, engine.Errorf(engine.KindInvalid, "ProposalFailedToValidate", "%s", v.Description)
	}
	if err := validateNetmapActions(st, f.Time, body); err != nil {
		return engine.Effect{}, engine.Wrap(engine.KindInvalid, "ProposalFailedToValidate", err, "set_network_parameters")
	}
	p := &Proposal{
		ProposalID: govreq.ProposalID(c.Req.Raw), ProposerID: c.Req.KeyID, State: StateOpen,
		CreatedTxID: f.TxID.String(), Body: body, Ballots: map[string]string{},
	}
	if err := r.progress(con, p, false); err != nil {
		return engine.Effect{}, err
	}
	return r.finish(c.Req, p)
}

func (c Vote) Execute(st engine.StateReader, f engine.Facts) (engine.Effect, error) {
	r := &run{st: st, facts: f, limits: c.Limits}
	if prev, err := r.begin(c.Req); err != nil || prev != nil {
		return engine.Effect{Replayed: prev != nil, Result: prev}, err
	}
	p, err := openProposal(st, c.Req.ProposalID)
	if err != nil {
		return engine.Effect{}, err
	}
	src, err := ballotSource(c.Req.Payload)
	if err != nil {
		return engine.Effect{}, err
	}
	if prev, ok := p.Ballots[c.Req.KeyID]; ok {
		// CCF: the same ballot again is answered as is, another refused.
		if prev == src {
			res, err := json.Marshal(p)
			return engine.Effect{Replayed: true, Result: res}, err
		}
		return engine.Effect{}, engine.Errorf(engine.KindInvalid, "VoteAlreadyExists",
			"Different ballot already submitted by %s for %s.", c.Req.KeyID, p.ProposalID)
	}
	if _, err := constitution.CompileBallot(src); err != nil {
		return engine.Effect{}, engine.Wrap(engine.KindInvalid, "InvalidBallot", err, "the ballot does not compile")
	}
	con, err := Constitution(st)
	if err != nil {
		return engine.Effect{}, err
	}
	p.Ballots[c.Req.KeyID] = src
	if err := r.progress(con, p, true); err != nil {
		return engine.Effect{}, err
	}
	return r.finish(c.Req, p)
}

func (c Withdraw) Execute(st engine.StateReader, f engine.Facts) (engine.Effect, error) {
	r := &run{st: st, facts: f, limits: c.Limits}
	if prev, err := r.begin(c.Req); err != nil || prev != nil {
		return engine.Effect{Replayed: prev != nil, Result: prev}, err
	}
	// CCF: withdrawing an unknown proposal succeeds with no content, and a
	// withdrawn one is answered as is; neither writes.
	p, ok, err := loadProposal(st, c.Req.ProposalID)
	if err != nil {
		return engine.Effect{}, err
	}
	if !ok {
		return engine.Effect{Replayed: true}, nil
	}
	if p.ProposerID != c.Req.KeyID {
		return engine.Effect{}, engine.Errorf(engine.KindForbidden, "AuthorizationFailed",
			"Proposal %s can only be withdrawn by proposer %s, not caller %s.", p.ProposalID, p.ProposerID, c.Req.KeyID)
	}
	switch p.State {
	case StateWithdrawn:
		res, err := json.Marshal(p)
		return engine.Effect{Replayed: true, Result: res}, err
	case StateOpen:
	default:
		return engine.Effect{}, engine.Errorf(engine.KindInvalid, "ProposalNotOpen",
			"Proposal %s is currently in state %s and cannot be withdrawn.", p.ProposalID, p.State)
	}
	p.State = StateWithdrawn
	r.record(p, true)
	return r.finish(c.Req, p)
}

func openProposal(st engine.StateReader, id string) (*Proposal, error) {
	p, ok, err := loadProposal(st, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, engine.Errorf(engine.KindNotFound, "ProposalNotFound", "Could not find proposal %s.", id)
	}
	if p.State != StateOpen {
		return nil, engine.Errorf(engine.KindInvalid, "ProposalNotOpen",
			"Proposal %s is currently in state %s - only Open proposals can receive votes", id, p.State)
	}
	return p, nil
}

// ballotSource reads a ballot payload: {"ballot": "<ES module source>"}.
func ballotSource(payload []byte) (string, error) {
	var b struct {
		Ballot *string `json:"ballot"`
	}
	dec := json.NewDecoder(bytesReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || b.Ballot == nil || *b.Ballot == "" || dec.More() {
		return "", engine.Errorf(engine.KindInvalid, "InvalidBallot", `a ballot payload is {"ballot": "<script>"}`)
	}
	return *b.Ballot, nil
}

// progress re-runs every ballot, resolves, and applies an accepted
// proposal: CCF's order. A throwing or misbehaving script fails the
// proposal; it never fails the request — unless the failure is not a
// result (refusal): then the request is refused and nothing is written.
func (r *run) progress(con *constitution.Constitution, p *Proposal, wasOpen bool) error {
	env := r.env()
	votes, failures, err := r.runBallots(env, con, p)
	if err != nil {
		return err
	}
	p.BallotCount = len(p.Ballots)
	p.FinalVotes = map[string]bool{}
	for _, v := range votes {
		p.FinalVotes[v.MemberID] = v.Vote
	}
	p.VoteFailures = failures
	state, err := con.Resolve(env, p.Body, p.ProposerID, votes, p.ProposalID)
	switch {
	case err != nil:
		if refusal(err) {
			return err
		}
		p.State, p.Failure = StateFailed, &Failure{Reason: "resolve: " + reason(err)}
	case state == constitution.ProposalState(StateAccepted):
		ws, err := con.Apply(env, p.Body, p.ProposalID)
		if err == nil {
			err = checkWrites(env, ws)
		}
		if err == nil {
			var nws engine.WriteSet
			nws, err = applyNetmapActions(r.st, r.facts, p.Body)
			ws = append(ws, nws...)
		}
		if err != nil {
			if refusal(err) {
				return err
			}
			p.State, p.Failure = StateFailed, &Failure{Reason: "apply: " + reason(err)}
			break
		}
		p.State = StateAccepted
		r.writes = append(r.writes, ws...)
		r.writes = append(r.writes, constitutionDigestWrites(ws)...)
		if constitution.ChangesCodeIdentity(ws) {
			r.dropOthers(p.ProposalID)
		}
	case state == constitution.ProposalState(StateRejected):
		p.State = StateRejected
	default:
		p.State = StateOpen
	}
	r.record(p, wasOpen)
	return nil
}

// checkWrites holds an accepted proposal's writes to what the engine
// itself relies on: a script budget must be in range, and a new
// constitution must instantiate and keep governance repairable
// (constitution.CheckRepairable), whatever the constitution in force says.
func checkWrites(env constitution.Env, ws engine.WriteSet) error {
	for _, w := range ws {
		if w.Key != "" || w.Delete && w.Table != constitution.TableConstitution {
			continue
		}
		switch w.Table {
		case constitution.TableJSRuntimeOptions:
			if _, err := constitution.ParseRuntimeOptions(w.Value); err != nil {
				return engine.Errorf(engine.KindInvalid, "InvalidRuntimeOptions", "%v", err)
			}
		case constitution.TableConstitution:
			if w.Delete {
				return engine.Errorf(engine.KindInvalid, constitution.CodeConstitutionNotRepairable, "the constitution cannot be removed")
			}
			src, err := decodeSource(w.Value)
			if err != nil {
				return engine.Errorf(engine.KindInvalid, constitution.CodeConstitutionNotRepairable, "the constitution record is not a JSON string")
			}
			if err := constitution.CheckRepairable(env, src); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *run) runBallots(env constitution.Env, con *constitution.Constitution, p *Proposal) ([]constitution.Vote, map[string]VoteFailure, error) {
	ids := make([]string, 0, len(p.Ballots))
	for id := range p.Ballots {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	p.BallotSubmitters = ids
	votes := make([]constitution.Vote, 0, len(ids))
	failures := map[string]VoteFailure{}
	for _, id := range ids {
		b, err := constitution.CompileBallot(p.Ballots[id])
		if err == nil {
			var v bool
			if v, err = r.vote(env, con, b, p); err == nil {
				votes = append(votes, constitution.Vote{MemberID: id, Vote: v})
				continue
			}
			if refusal(err) {
				return nil, nil, err
			}
		}
		failures[id] = VoteFailure{Reason: reason(err)}
	}
	return votes, failures, nil
}

// record writes the proposal and its place in the open index; wasOpen
// says whether it was recorded as Open before.
func (r *run) record(p *Proposal, wasOpen bool) {
	answer, rec := p.encodeBoth()
	r.recorded.p, r.recorded.answer = p, answer
	r.writes = append(r.writes, engine.Write{Table: TableProposals, Key: p.ProposalID, Value: rec})
	switch isOpen := p.State == StateOpen; {
	case isOpen && !wasOpen:
		r.openDelta++
		r.writes = append(r.writes, engine.Write{Table: TableOpenProposals, Key: p.ProposalID, Value: []byte{}})
	case !isOpen && wasOpen:
		r.openDelta--
		r.writes = append(r.writes, engine.Write{Table: TableOpenProposals, Key: p.ProposalID, Delete: true})
	}
}

func openCount(st engine.StateReader) (int, error) {
	b, ok, err := st.Get(TableCounters, "open")
	if err != nil || !ok {
		return 0, err
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return 0, fmt.Errorf("gov: open proposal count %q: %w", b, err)
	}
	return n, nil
}

// dropOthers drops every other open proposal: the code identity or the
// constitution they were made under has changed (CCF's Dropped).
func (r *run) dropOthers(except string) {
	var ids []string
	r.st.Range(TableOpenProposals, func(id string, _ []byte) bool {
		if id != except {
			ids = append(ids, id)
		}
		return true
	})
	slices.Sort(ids)
	for _, id := range ids {
		p, ok, err := loadProposal(r.st, id)
		if err != nil || !ok {
			continue
		}
		p.State = StateDropped
		r.record(p, true)
	}
}

package gov_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"runtime/metrics"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/gavelhq/gavel/engine"

	"github.com/gavelhq/gavel/engine/audit"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/merkle"
	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/engine/receipt"
)

// The scenario language, one command per line, each followed by the line
// "=> <expected>" (the answer the runner prints for it):
//
//	members alice bob carol        genesis with these members (once, first)
//	constitution NAME              genesis uses testdata/constitutions/NAME.js (before members)
//	limits timeout=20ms            script limits for the run (before members)
//	time +90s                      move the engine clock
//	propose M P [@mods] JSON       M proposes; the proposal is called P
//	vote M P yes|no|js: SOURCE     M votes on P
//	withdraw M P [@mods]
//	resend                         send the previous envelope again, verbatim
//	state P                        => P's state
//	members?                       => the active members' names, sorted
//	kv TABLE KEY                   => the JSON stored there, or absent
//
// Answers: a proposal's state ("Open", "Accepted failure", "Open
// vote_failures=bob"), "replayed <state>", or "error <Code>". Modifiers:
// @created=-10m (created_at relative to the clock), @badsig (a flipped
// signature bit), @kid=NAME (signed by M but naming NAME's kid). In JSON
// and ballots, $cert:NAME is NAME's certificate (made on first use),
// $id:NAME its member id, $proposal:P a proposal id, and
// $constitution:NAME the module testdata/constitutions/NAME.js.
//
// After the last line the whole history is replayed by the auditor, which
// must re-execute every entry to the same write set.

type scenario struct {
	t        *testing.T
	file     string
	state    constitution.MemState
	limits   constitution.Limits
	module   string
	now      time.Time
	keys     map[string]*govreq.Member
	names    map[string]string // member id → name
	props    map[string]string // proposal name → id
	entries  []*engine.Entry
	last     []byte // previous envelope
	lastTyp  govreq.MsgType
	identity []byte
	signer   *receipt.Signer // the service's, for signature entries
}

// TestScenarios runs every scenario on a service that takes the
// shortcuts (reused ballot outcomes, ballotcache.go; instances prepared
// right after each call, so every later call of a module uses one) and
// audits it without: the auditor recomputes everything, so a shortcut's
// outcome must be exactly the recomputed one.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	defer restoreShortcuts()
	hits, prepared, decoded := gov.BallotOutcomesReused(), constitution.PreparedCalls(), gov.DecodedRecordsReused()
	policies := constitution.JoinPoliciesReused()
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txt")
		run := func(t *testing.T) {
			shortcuts(true)
			runScenarioThen(t, f, func() { shortcuts(false) })
		}
		t.Run(name, func(t *testing.T) {
			if !strings.HasPrefix(name, "hostile") {
				run(t)
				return
			}
			peak := watchHeap()
			run(t)
			p := peak()
			t.Logf("heap peak %d MiB (bound %d MiB)", p>>20, hostileHeapBound>>20)
			if p > hostileHeapBound {
				t.Fatalf("the heap peaked at %d MiB running hostile scripts; the bound is %d MiB", p>>20, hostileHeapBound>>20)
			}
		})
	}
	if gov.BallotOutcomesReused() == hits || constitution.PreparedCalls() == prepared || gov.DecodedRecordsReused() == decoded ||
		constitution.JoinPoliciesReused() == policies {
		t.Fatal("the service reused no ballot outcome, prepared instance, decoded record or compiled join policy: the audit's comparison proves nothing")
	}
}

// hostileHeapBound is the memory bound stated for hostile scripts: the
// heap (live and unswept objects) never exceeds it while they run. Each
// call may grow the heap by the safety net's 256 MiB at most, and a string
// is checked against max_string_length (4 Mi code units) as it is built.
const hostileHeapBound = 768 << 20

// watchHeap samples the heap until the returned function is called, which
// reports the peak.
func watchHeap() func() uint64 {
	stop := make(chan struct{})
	done := make(chan uint64)
	go func() {
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-stop:
				done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		return <-done
	}
}

// TestShortcutsAreInvisible runs every scenario on a service that
// recomputes everything (no reused ballot outcomes, no instances prepared
// ahead), then audits it with both (the cache starting empty, as in a
// fresh process). TestScenarios does the converse. The auditor
// re-executes every entry and compares write sets and answers, so a
// shortcut's outcome must be exactly the recomputed one.
func TestShortcutsAreInvisible(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	defer restoreShortcuts()
	hits, prepared, decoded := gov.BallotOutcomesReused(), constitution.PreparedCalls(), gov.DecodedRecordsReused()
	policies := constitution.JoinPoliciesReused()
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			shortcuts(false)
			runScenarioThen(t, f, func() { shortcuts(true) })
		})
	}
	if gov.BallotOutcomesReused() == hits || constitution.PreparedCalls() == prepared || gov.DecodedRecordsReused() == decoded ||
		constitution.JoinPoliciesReused() == policies {
		t.Fatal("the auditor reused no ballot outcome, prepared instance, decoded record or compiled join policy: the comparison proves nothing")
	}
}

// shortcuts turns on or off (and empties) the ballot outcome cache and
// the decoded proposal records, and preparing instances ahead: inline, so
// that scenarios use them deterministically.
func shortcuts(on bool) {
	gov.SetBallotCache(on)
	gov.SetRecordCache(on)
	constitution.SetJoinPolicyCache(on)
	if on {
		constitution.SetPrepareMode(constitution.PrepareInline)
	} else {
		constitution.SetPrepareMode(constitution.PrepareNever)
	}
}

// restoreShortcuts puts the defaults back: a reusing cache, instances
// prepared in the background.
func restoreShortcuts() {
	gov.SetBallotCache(true)
	gov.SetRecordCache(true)
	constitution.SetJoinPolicyCache(true)
	constitution.SetPrepareMode(constitution.PrepareAhead)
}

// runScenarioThen runs a scenario, calls beforeAudit, then audits it.
func runScenarioThen(t *testing.T, file string, beforeAudit func()) {
	s := &scenario{t: t, file: file, state: constitution.MemState{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		// The service's budget: a loaded machine must not fail a sound script.
		limits: constitution.Limits{Timeout: constitution.MaxTimeout},
		keys:   map[string]*govreq.Member{}, names: map[string]string{}, props: map[string]string{}}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var pending string // answer awaiting its "=>" line
	pendingLine, line := 0, 0
	checked := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if want, ok := strings.CutPrefix(text, "=>"); ok {
			if pendingLine == 0 {
				t.Fatalf("%s:%d: expectation without a command", file, line)
			}
			if got, want := pending, strings.TrimSpace(want); got != want {
				t.Errorf("%s:%d: got %q, want %q", file, pendingLine, got, want)
			}
			pendingLine = 0
			checked++
			continue
		}
		if pendingLine != 0 {
			t.Fatalf("%s:%d: command without an expectation (got %q)", file, pendingLine, pending)
		}
		pending, pendingLine = s.do(text, line), line
	}
	if pendingLine != 0 {
		t.Fatalf("%s:%d: command without an expectation (got %q)", file, pendingLine, pending)
	}
	if checked == 0 {
		t.Fatalf("%s: no expectations", file)
	}
	beforeAudit()
	s.audit()
}

func (s *scenario) fatalf(line int, format string, args ...any) {
	s.t.Fatalf("%s:%d: %s", s.file, line, fmt.Sprintf(format, args...))
}

func (s *scenario) do(text string, line int) string {
	verb, rest, _ := strings.Cut(text, " ")
	switch verb {
	case "constitution":
		b, err := os.ReadFile(filepath.Join("testdata/constitutions", rest+".js"))
		if err != nil {
			s.fatalf(line, "%v", err)
		}
		s.module = string(b)
		return "ok"
	case "limits":
		for _, kv := range strings.Fields(rest) {
			k, v, _ := strings.Cut(kv, "=")
			d, err := time.ParseDuration(v)
			if k != "timeout" || err != nil {
				s.fatalf(line, "bad limit %q", kv)
			}
			s.limits.Timeout = d
		}
		return "ok"
	case "members":
		return s.genesis(strings.Fields(rest), line)
	case "members?":
		var names []string
		s.state.Range(constitution.TableMembers, func(id string, v []byte) bool {
			var m gov.Member
			json.Unmarshal(v, &m)
			if m.Status == constitution.MemberActive {
				names = append(names, s.nameOf(id))
			}
			return true
		})
		sort.Strings(names)
		return strings.Join(names, " ")
	case "time":
		d, err := time.ParseDuration(strings.TrimPrefix(rest, "+"))
		if err != nil {
			s.fatalf(line, "%v", err)
		}
		s.now = s.now.Add(d)
		return "ok"
	case "propose", "vote", "withdraw":
		return s.request(verb, rest, line)
	case "ack":
		return s.ack(rest, line)
	case "resend":
		if s.last == nil {
			s.fatalf(line, "nothing to resend")
		}
		return s.submit(s.last, s.lastTyp)
	case "state":
		p, ok, err := gov.LoadProposal(s.state, s.props[rest])
		if err != nil || !ok {
			return "absent"
		}
		return p.State
	case "kv":
		table, key, _ := strings.Cut(rest, " ")
		if key == `""` {
			key = ""
		}
		v, ok, _ := s.state.Get(table, s.expand(key, line))
		if !ok {
			return "absent"
		}
		return string(v)
	}
	s.fatalf(line, "unknown command %q", verb)
	return ""
}

func (s *scenario) nameOf(id string) string {
	if n, ok := s.names[id]; ok {
		return n
	}
	return id[:8]
}

// member returns NAME's key, making one on first use.
func (s *scenario) member(name string) *govreq.Member {
	if m, ok := s.keys[name]; ok {
		return m
	}
	certPEM, keyPEM, err := govreq.Keygen("ES256", name)
	if err != nil {
		s.t.Fatal(err)
	}
	m, err := govreq.LoadMember(certPEM, keyPEM)
	if err != nil {
		s.t.Fatal(err)
	}
	s.keys[name], s.names[m.ID] = m, name
	return m
}

func certPEM(m *govreq.Member) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.Cert.Raw}))
}

var placeholder = regexp.MustCompile(`\$(cert|id|proposal|constitution):([A-Za-z0-9_]+)`)

func (s *scenario) expand(text string, line int) string {
	return placeholder.ReplaceAllStringFunc(text, func(ph string) string {
		m := placeholder.FindStringSubmatch(ph)
		switch m[1] {
		case "cert":
			b, _ := json.Marshal(certPEM(s.member(m[2])))
			return strings.Trim(string(b), `"`)
		case "id":
			return s.member(m[2]).ID
		case "proposal":
			id, ok := s.props[m[2]]
			if !ok {
				s.fatalf(line, "no proposal %s", m[2])
			}
			return id
		default:
			b, err := os.ReadFile(filepath.Join("testdata/constitutions", m[2]+".js"))
			if err != nil {
				s.fatalf(line, "%v", err)
			}
			j, _ := json.Marshal(string(b))
			return strings.Trim(string(j), `"`)
		}
	})
}

func (s *scenario) genesis(names []string, line int) string {
	if len(s.entries) > 0 {
		s.fatalf(line, "members twice")
	}
	var members []gov.InitialMember
	for _, n := range names {
		members = append(members, gov.InitialMember{CertPEM: []byte(certPEM(s.member(n)))})
	}
	module := s.module
	if module == "" {
		var err error
		if module, err = constitution.DefaultModule(); err != nil {
			s.t.Fatal(err)
		}
	}
	ws, err := gov.GenesisWrites(members, module, gov.DefaultConfig())
	if err != nil {
		s.fatalf(line, "%v", err)
	}
	s.identity, s.signer = serviceCert(s.t)
	eff, err := exec.Genesis{ServiceCertPEM: s.identity, Governance: ws,
		NetworkMap: &exec.NetworkMapGenesis{Parameters: netmap.DefaultParameters(), Limits: netmap.DefaultLimits()}}.Execute(s.state, s.facts())
	if err != nil {
		s.t.Fatal(err)
	}
	s.commit(engine.KindGenesis, nil, eff)
	return "ok"
}

func (s *scenario) facts() engine.Facts {
	return engine.Facts{TxID: engine.TxID{View: 1, Seqno: uint64(len(s.entries) + 1)}, Time: s.now}
}

func (s *scenario) commit(kind engine.EntryKind, input []byte, eff engine.Effect) {
	f := s.facts()
	e := &engine.Entry{Kind: kind, View: 1, Seqno: f.TxID.Seqno, TimeMillis: s.now.UnixMilli(), Input: input,
		Writes: eff.Writes, ClaimsDigest: eff.ClaimsDigest, Result: eff.Result}
	rand.Read(e.Nonce[:])
	e.Seal()
	s.state.Apply(e.Writes)
	s.entries = append(s.entries, e)
}

func (s *scenario) request(verb, rest string, line int) string {
	fields := strings.SplitN(rest, " ", 3)
	if len(fields) < 2 {
		s.fatalf(line, "%s needs a member and a proposal", verb)
	}
	signer, pname := s.member(fields[0]), fields[1]
	rest = ""
	if len(fields) == 3 {
		rest = fields[2]
	}
	created, badSig, kidAs := s.now, false, ""
	for strings.HasPrefix(rest, "@") {
		var mod string
		mod, rest, _ = strings.Cut(rest, " ")
		switch {
		case strings.HasPrefix(mod, "@created="):
			d, err := time.ParseDuration(strings.TrimPrefix(mod, "@created="))
			if err != nil {
				s.fatalf(line, "%v", err)
			}
			created = s.now.Add(d)
		case mod == "@badsig":
			badSig = true
		case strings.HasPrefix(mod, "@kid="):
			kidAs = strings.TrimPrefix(mod, "@kid=")
		default:
			s.fatalf(line, "unknown modifier %q", mod)
		}
	}
	var typ govreq.MsgType
	var payload []byte
	proposalID := ""
	switch verb {
	case "propose":
		typ, payload = govreq.MsgProposal, []byte(s.expand(rest, line))
	case "vote":
		typ, proposalID = govreq.MsgBallot, s.propID(pname)
		src := map[string]string{"yes": "export function vote() { return true; }", "no": "export function vote() { return false; }"}[rest]
		if js, ok := strings.CutPrefix(rest, "js:"); ok {
			src = s.expand(strings.TrimSpace(js), line)
		}
		if src == "" {
			s.fatalf(line, "a vote is yes, no or js: SOURCE")
		}
		payload, _ = json.Marshal(map[string]string{"ballot": src})
	case "withdraw":
		typ, proposalID = govreq.MsgWithdrawal, s.propID(pname)
	}
	var raw []byte
	var err error
	if kidAs == "" {
		raw, err = govreq.Sign(signer.Key, signer.Cert, typ, proposalID, created, payload)
	} else {
		raw, err = signAs(signer, s.member(kidAs).ID, typ, proposalID, created, payload)
	}
	if err != nil {
		s.fatalf(line, "sign: %v", err)
	}
	if badSig {
		raw[len(raw)-2] ^= 0x01
	}
	if typ == govreq.MsgProposal {
		s.props[pname] = govreq.ProposalID(raw)
	}
	s.last, s.lastTyp = raw, typ
	return s.submit(raw, typ)
}

// propID is a known proposal's id, or a made-up one for an unknown name.
func (s *scenario) propID(name string) string {
	if id, ok := s.props[name]; ok {
		return id
	}
	return strings.Repeat("0", 63) + "1"
}

// submit runs a request the way the service does: verify against the
// current members, then execute; an accepted one becomes an entry.
func (s *scenario) submit(raw []byte, typ govreq.MsgType) string {
	before := len(s.entries)
	answer := func() string {
		req, err := gov.Verify(s.state, raw, typ, 0)
		if err != nil {
			s.t.Logf("%v", err)
			return "error " + engine.AsError(err).Code
		}
		cmd := gov.Command(req, s.limits)
		eff, err := cmd.Execute(s.state, s.facts())
		if err != nil {
			s.t.Logf("%v", err)
			return "error " + engine.AsError(err).Code
		}
		state := describe(eff.Result, s)
		if eff.Replayed {
			return "replayed " + state
		}
		s.commit(cmd.Kind(), raw, eff)
		return state
	}()
	if strings.HasPrefix(answer, "error") || strings.HasPrefix(answer, "replayed") {
		if len(s.entries) != before {
			s.t.Fatalf("a refused or replayed request wrote an entry")
		}
	}
	return answer
}

func describe(result []byte, s *scenario) string {
	if len(result) == 0 {
		return "no content"
	}
	var p gov.Proposal
	if err := json.Unmarshal(result, &p); err != nil {
		return "unparsable answer"
	}
	out := p.State
	if p.Failure != nil {
		out += " failure"
	}
	if len(p.VoteFailures) > 0 {
		var names []string
		for id := range p.VoteFailures {
			names = append(names, s.nameOf(id))
		}
		slices.Sort(names)
		out += " vote_failures=" + strings.Join(names, ",")
	}
	return out
}

// audit replays the scenario's ledger through the auditor.
func (s *scenario) audit() {
	if len(s.entries) == 0 {
		return
	}
	r := audit.NewReplayer(nil)
	r.SetScriptLimits(s.limits)
	for _, e := range s.entries {
		b, err := e.Encode()
		if err != nil {
			s.t.Fatal(err)
		}
		if err := r.AddAuthenticated(e.Seqno, e.Subject(), b); err != nil {
			s.t.Fatalf("%s: audit replay: %v", s.file, err)
		}
	}
	if sum := r.Summary(); sum.Entries != uint64(len(s.entries)) {
		s.t.Fatalf("audit saw %d of %d entries", sum.Entries, len(s.entries))
	}
	s.auditCatchesForgery()
}

// auditCatchesForgery changes one value in the last governance entry's
// write set (resealing its digest, as a forger would) and checks that the
// auditor names that transaction and the table and key.
func (s *scenario) auditCatchesForgery() {
	last := -1
	for i, e := range s.entries {
		if e.Kind != engine.KindGenesis && len(e.Writes) > 0 {
			last = i
		}
	}
	if last < 0 {
		return
	}
	forged := *s.entries[last]
	forged.Writes = slices.Clone(forged.Writes)
	w := &forged.Writes[0]
	w.Value = append(slices.Clone(w.Value), ' ')
	forged.Seal()
	r := audit.NewReplayer(nil)
	r.SetScriptLimits(s.limits)
	for i, e := range s.entries {
		if i == last {
			e = &forged
		}
		b, _ := e.Encode()
		err := r.AddAuthenticated(e.Seqno, e.Subject(), b)
		if i < last && err != nil {
			s.t.Fatalf("%s: audit of the honest prefix: %v", s.file, err)
		}
		if i == last {
			var div *audit.Divergence
			if !errors.As(err, &div) || div.TxID != e.TxID().String() || !strings.Contains(div.Reason, w.Table) {
				s.t.Fatalf("%s: a forged write to %s/%s at %s was not named: %v", s.file, w.Table, w.Key, e.TxID(), err)
			}
			return
		}
	}
}

func serviceCert(t *testing.T) ([]byte, *receipt.Signer) {
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scenario service"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	signer, err := receipt.NewSigner(key, cert)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), signer
}

// ack has a member activate itself as in CCF: a signature entry first (the
// digest is taken from it), then the member's state_digest request and its
// signed ack of the answer. "ack NAME @digest=HEX" acks HEX instead.
func (s *scenario) ack(rest string, line int) string {
	name, mod, _ := strings.Cut(rest, " ")
	m := s.member(name)
	tree := merkle.New()
	tree.Append(engine.Digest{}, nil)
	for _, e := range s.entries {
		tree.Append(e.Leaf(), nil)
	}
	at := s.facts().TxID
	sig, err := s.signer.SignRoot(tree.Root(), at, s.now, "gavel", "ledger.signature")
	if err != nil {
		s.t.Fatal(err)
	}
	s.commit(engine.KindSignature, nil, engine.Effect{Writes: engine.WriteSet{{Table: engine.TableSignatures, Key: "", Value: sig}}})
	step := func(typ govreq.MsgType, payload []byte) ([]byte, string) {
		raw, err := govreq.Sign(m.Key, m.Cert, typ, "", s.now, payload)
		if err != nil {
			s.fatalf(line, "sign: %v", err)
		}
		req, err := gov.Verify(s.state, raw, typ, 0)
		if err != nil {
			return nil, "error " + engine.AsError(err).Code
		}
		cmd := gov.Command(req, s.limits)
		eff, err := cmd.Execute(s.state, s.facts())
		if err != nil {
			s.t.Logf("%v", err)
			return nil, "error " + engine.AsError(err).Code
		}
		if !eff.Replayed {
			s.commit(cmd.Kind(), raw, eff)
		}
		return eff.Result, ""
	}
	digest, refused := step(govreq.MsgStateDigest, nil)
	if refused != "" {
		return refused
	}
	if d, ok := strings.CutPrefix(mod, "@digest="); ok {
		digest, _ = json.Marshal(map[string]string{"memberId": m.ID, "stateDigest": d})
	}
	if _, refused := step(govreq.MsgAck, digest); refused != "" {
		return refused
	}
	return "ok"
}

// signAs signs with m's key an envelope whose kid names another member, as
// a member impersonating another would.
func signAs(m *govreq.Member, kid string, typ govreq.MsgType, proposalID string, created time.Time, payload []byte) ([]byte, error) {
	protected, err := govreq.EncodeProtected(m.Alg, kid, typ, created.Unix(), proposalID)
	if err != nil {
		return nil, err
	}
	sig, err := cose.Sign(m.Key, cose.Algorithm(m.Alg), protected, payload)
	if err != nil {
		return nil, err
	}
	return engine.CBOR.Marshal(cbor.Tag{Number: 18, Content: []any{protected, map[any]any{}, payload, sig}})
}

package audit

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/fold"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/merkle"
	"github.com/gavelhq/gavel/engine/nodes"
	"github.com/gavelhq/gavel/engine/receipt"
)

// Divergence is the first point where the log is not what it claims.
type Divergence struct {
	TxID   string // the first bad transaction (or "seq N" when undecodable)
	Reason string
	// Mismatch is set when a write set differs from its re-execution: the
	// table, the key and both full values.
	Mismatch *WriteSetMismatch
}

func (d *Divergence) Error() string { return fmt.Sprintf("divergence at %s: %s", d.TxID, d.Reason) }

// Summary is the result of a replay.
type Summary struct {
	Entries    uint64 `json:"entries"` // every message checked, void entries included
	LastTxID   string `json:"last_txid"`
	Root       string `json:"root"`
	Signatures uint64 `json:"signatures"`
	Statements uint64 `json:"statements"`
	Governance uint64 `json:"governance"`
	Nodes      uint64 `json:"nodes"` // node joins and deletes, each re-derived
	// NetworkMap counts NodeInfo publishes, acknowledgements and flag days.
	NetworkMap uint64 `json:"network_map"`
	// LastSignedTxID is the last signature entry; entries after it are
	// verified but not yet covered by a signature.
	LastSignedTxID string `json:"last_signed_txid,omitempty"`
	Unsigned       uint64 `json:"unsigned_entries"`
	// VoidEntries are the messages that are not authenticated entries:
	// foreign writes, folded as engine.VoidLeaf and never applied. They
	// are findings, not divergences: the history around them is whole.
	VoidEntries []VoidEntry `json:"void_entries"`
	// Inconclusive lists governance entries whose outcome a safety net
	// decided (wall-clock or heap: machine-dependent, so neither verified
	// nor a divergence): an entry an older build recorded with such an
	// outcome, or one whose re-execution here tripped the auditor's own
	// safety net. The replay goes on with the recorded writes.
	Inconclusive []Inconclusive `json:"inconclusive,omitempty"`
}

// VoidEntry is a void entry the replay found.
type VoidEntry struct {
	Seqno  uint64 `json:"seqno"`
	Reason string `json:"reason"`
}

// Inconclusive is an entry the replay could neither verify nor refute.
type Inconclusive struct {
	TxID   string `json:"txid"`
	Reason string `json:"reason"`
}

// StatementVerifier re-runs a registration's stateless checks: it returns
// the command that the entry's input yields when verified at the entry's
// time.
type StatementVerifier func(raw []byte, at engine.Facts) (engine.Command, error)

// Replayer checks entries handed to it in log order.
type Replayer struct {
	verifyStatement StatementVerifier
	tree            *merkle.Tree
	serviceKey      crypto.PublicKey
	serviceCert     []byte // DER the genesis certificate must be, when set
	trusted         *engine.TrustedNodes
	pos             fold.Position // the fold's: tree and state are folded with it
	sum             Summary
	// state holds every table but the statements index, which nothing
	// executed reads: governance is re-executed against it.
	state  constitution.MemState
	limits constitution.Limits
	// nodes follows node writes and signatures: a delete is re-derived
	// from it; joins are re-verified with the genesis settings.
	nodes        *nodes.Fold
	joinSettings *nodes.Settings
	// ahead is the statement check AddAll ran ahead for the entry being
	// added, if any.
	ahead *verified
}

// NewReplayer returns a replayer for a log starting at seqno 1.
func NewReplayer(verifyStatement StatementVerifier) *Replayer {
	tree := merkle.New()
	tree.Append(engine.Digest{}, nil) // CCF's zero leaf 0: leaf index = seqno
	return &Replayer{verifyStatement: verifyStatement, tree: tree, state: constitution.MemState{}, trusted: engine.NewTrustedNodes(), nodes: nodes.NewFold(),
		sum: Summary{VoidEntries: []VoidEntry{}}}
}

// ExpectServiceCertificate makes the replay refuse a genesis entry whose
// service certificate is not certPEM.
func (r *Replayer) ExpectServiceCertificate(certPEM []byte) error {
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return fmt.Errorf("service certificate is not a PEM certificate")
	}
	r.serviceCert = blk.Bytes
	return nil
}

// SetScriptLimits sets the safety net (wall-clock, heap) for re-executed
// constitution calls; the budget is the ledger's, as in force at each
// entry.
func (r *Replayer) SetScriptLimits(l constitution.Limits) { r.limits = l }

// replayTables are the tables the replay folds into: every table but the
// statements index, which nothing executed reads.
type replayTables struct{ constitution.MemState }

func (t replayTables) Set(table, key string, value []byte) error {
	if table != engine.TableStatements {
		t.Apply(engine.WriteSet{{Table: table, Key: key, Value: value}})
	}
	return nil
}

func (t replayTables) Delete(table, key string) error {
	t.Apply(engine.WriteSet{{Table: table, Key: key, Delete: true}})
	return nil
}

// fold folds a checked entry (or a void one) into the replay's position,
// tree and state: the fold the sequencer and the store apply too.
func (r *Replayer) fold(e *engine.Entry) error {
	return fold.Apply(&r.pos, r.tree, replayTables{r.state}, e, nil)
}

// errInconclusive marks a governance entry a safety net decided.
type errInconclusive struct{ reason string }

func (e *errInconclusive) Error() string { return e.reason }

// governance re-executes a member's request against the state before it,
// with the constitution and budget then in force, and compares the write
// sets.
func (r *Replayer) governance(e *engine.Entry) error {
	typ := map[engine.EntryKind]govreq.MsgType{
		engine.KindGovProposal: govreq.MsgProposal, engine.KindGovBallot: govreq.MsgBallot, engine.KindGovWithdrawal: govreq.MsgWithdrawal,
		engine.KindGovStateDigest: govreq.MsgStateDigest, engine.KindGovAck: govreq.MsgAck,
	}[e.Kind]
	req, err := gov.Verify(r.state, e.Input, typ, len(e.Input))
	if err != nil {
		return fmt.Errorf("request does not verify: %w", err)
	}
	facts := engine.Facts{TxID: e.TxID(), Time: e.Time()}
	eff, err := gov.Command(req, r.limits).Execute(r.state, facts)
	if errors.Is(err, constitution.ErrSafetyLimit) {
		return &errInconclusive{"re-execution tripped the auditor's script safety net: " + err.Error()}
	}
	if err != nil {
		return fmt.Errorf("re-execution refuses the request: %w", err)
	}
	if eff.Replayed {
		return fmt.Errorf("the ledger already held this request")
	}
	if got := eff.Writes.Canonical(); !got.Equal(e.Writes) {
		if code := legacySafetyOutcome(e.Writes); code != "" {
			return &errInconclusive{"the entry records a " + code + " outcome (a wall-clock or heap limit of an older build), which no re-execution can reproduce"}
		}
		return fmt.Errorf("write set differs from re-execution: %w", diffWrites(e.Writes, got))
	}
	if !bytes.Equal(eff.Result, e.Result) {
		return fmt.Errorf("recorded answer %s, re-executed %s", e.Result, eff.Result)
	}
	return nil
}

// Add checks the message at stream sequence m.Seq. It authenticates it
// first (engine.TrustedNodes.OpenEntry, against the service nodes Trusted
// as of the entry before); a message that is not an authenticated entry
// is a void entry: its leaf is engine.VoidLeaf, it is listed in
// Summary.VoidEntries, and nothing of it is applied. A void first message
// is a divergence: a ledger without an authenticated genesis authenticates
// nothing.
func (r *Replayer) Add(m engine.LedgerMsg) error {
	if want := r.tree.Size(); m.Seq != want {
		return &Divergence{TxID: fmt.Sprintf("seq %d", m.Seq), Reason: fmt.Sprintf("expected seqno %d", want)}
	}
	var e *engine.Entry
	var err error
	if v := r.ahead; v != nil && v.authenticated && v.seq == m.Seq && v.trustedVersion == r.trusted.Version() {
		e, err = v.entry, v.openErr // authenticated and opened ahead against this very set
	} else {
		e, err = r.trusted.OpenEntry(m)
	}
	if err != nil && m.Seq == 1 {
		// Without it nothing after can be authenticated: not a history.
		return &Divergence{TxID: "seq 1", Reason: "the first message is not an authenticated genesis entry: " + err.Error()}
	}
	if err != nil {
		if err := r.fold(engine.VoidEntry(m.Seq, r.pos.View, r.pos.TimeMillis, err)); err != nil {
			return &Divergence{TxID: fmt.Sprintf("seq %d", m.Seq), Reason: err.Error()}
		}
		r.nodes.Skip(m.Seq)
		r.sum.VoidEntries = append(r.sum.VoidEntries, VoidEntry{Seqno: m.Seq, Reason: err.Error()})
		r.sum.Entries++
		r.sum.Unsigned++
		return nil
	}
	if err := r.check(m.Seq, m.Subject, e); err != nil {
		return err
	}
	r.trusted.Observe(e.Writes)
	return nil
}

// AddAuthenticated checks an entry whose authentication the caller vouches
// for (tests that build ledgers without a node key).
func (r *Replayer) AddAuthenticated(seq uint64, subject string, data []byte) error {
	e, err := engine.DecodeEntry(data)
	if err != nil {
		return &Divergence{TxID: fmt.Sprintf("seq %d", seq), Reason: err.Error()}
	}
	return r.check(seq, subject, e)
}

func (r *Replayer) check(seq uint64, subject string, e *engine.Entry) error {
	tx := e.TxID().String()
	bad := func(format string, args ...any) error {
		d := &Divergence{TxID: tx, Reason: fmt.Sprintf(format, args...)}
		for _, a := range args {
			if err, ok := a.(error); ok {
				errors.As(err, &d.Mismatch)
			}
		}
		return d
	}
	if e.Seqno != seq {
		return bad("entry says seqno %d but sits at stream sequence %d", e.Seqno, seq)
	}
	if want := r.tree.Size(); e.Seqno != want {
		return bad("expected seqno %d", want)
	}
	if subject != e.Subject() {
		return bad("published on %s, not %s", subject, e.Subject())
	}
	if r.pos.Seqno > 0 {
		if e.View < r.pos.View {
			return bad("view goes back from %d", r.pos.View)
		}
		if e.TimeMillis < r.pos.TimeMillis {
			return bad("time goes back")
		}
	}
	if e.Seqno == 1 && e.Kind != engine.KindGenesis {
		return bad("the first entry is not genesis")
	}
	switch e.Kind {
	case engine.KindGenesis:
		if e.Seqno != 1 {
			return bad("a second genesis entry")
		}
		if err := r.genesis(e); err != nil {
			return bad("%v", err)
		}
	case engine.KindSignature:
		if r.serviceKey == nil {
			return bad("signature before genesis")
		}
		if err := r.signature(e); err != nil {
			return bad("%v", err)
		}
		r.sum.Signatures++
		r.sum.LastSignedTxID = tx
	case engine.KindStatement:
		if err := r.statement(e); err != nil {
			return bad("%v", err)
		}
		r.sum.Statements++
	case engine.KindGovProposal, engine.KindGovBallot, engine.KindGovWithdrawal, engine.KindGovStateDigest, engine.KindGovAck:
		if r.serviceKey == nil {
			return bad("governance before genesis")
		}
		var inc *errInconclusive
		if err := r.governance(e); errors.As(err, &inc) {
			r.sum.Inconclusive = append(r.sum.Inconclusive, Inconclusive{TxID: tx, Reason: inc.reason})
		} else if err != nil {
			return bad("%v", err)
		}
		r.sum.Governance++
	case engine.KindNodeJoin, engine.KindNodeDelete:
		if r.serviceKey == nil {
			return bad("node entry before genesis")
		}
		if err := r.node(e); err != nil {
			return bad("%v", err)
		}
		r.sum.Nodes++
	case engine.KindNodeInfo, engine.KindNodeAck, engine.KindFlagDay:
		if r.serviceKey == nil {
			return bad("network map before genesis")
		}
		if err := r.netmap(e); err != nil {
			return bad("%v", err)
		}
		r.sum.NetworkMap++
	default:
		return bad("unknown entry kind %q", e.Kind)
	}
	if err := r.fold(e); err != nil {
		return bad("%v", err)
	}
	r.nodes.Observe(e)
	r.sum.Entries++
	r.sum.LastTxID = tx
	if e.Kind == engine.KindSignature {
		r.sum.Unsigned = 0
	} else {
		r.sum.Unsigned++
	}
	return nil
}

// Summary returns the replay's result so far.
func (r *Replayer) Summary() Summary {
	s := r.sum
	root := r.tree.Root()
	s.Root = hex.EncodeToString(root[:])
	return s
}

func (r *Replayer) genesis(e *engine.Entry) error {
	if len(e.Input) != 0 {
		return fmt.Errorf("genesis carries an input")
	}
	pemBytes, ok := e.Writes.Value(engine.TableService, exec.KeyServiceCertificate)
	if !ok {
		return fmt.Errorf("genesis has no service certificate")
	}
	if r.serviceCert != nil {
		if blk, _ := pem.Decode(pemBytes); blk == nil || !bytes.Equal(blk.Bytes, r.serviceCert) {
			return fmt.Errorf("genesis records another service certificate than the one given")
		}
	}
	key, err := publicKeyFromPEM(pemBytes)
	if err != nil {
		return err
	}
	r.serviceKey = key
	return nil
}

func (r *Replayer) signature(e *engine.Entry) error {
	sig, ok := e.Writes.Value(engine.TableSignatures, "")
	if !ok || len(e.Writes) != 1 {
		return fmt.Errorf("signature entry writes %d values, not just the signature", len(e.Writes))
	}
	root := r.tree.Root()
	signed, err := receipt.VerifySignature(sig, root, r.serviceKey)
	if err != nil {
		return fmt.Errorf("signature over root %x: %w", root, err)
	}
	if signed != e.TxID() {
		return fmt.Errorf("signature names transaction %s", signed)
	}
	return nil
}

func (r *Replayer) statement(e *engine.Entry) error {
	if r.verifyStatement == nil {
		return nil
	}
	f := engine.Facts{TxID: e.TxID(), Time: e.Time()}
	var cmd engine.Command
	var err error
	if v := r.verifiedFor(e, f); v != nil {
		cmd, err = v.cmd, v.err
	} else {
		cmd, err = r.verifyStatement(e.Input, f)
	}
	if err != nil {
		return fmt.Errorf("statement does not verify: %w", err)
	}
	eff, err := cmd.Execute(nil, engine.Facts{TxID: e.TxID(), Time: e.Time()})
	if err != nil {
		return fmt.Errorf("statement does not execute: %w", err)
	}
	if eff.ClaimsDigest != e.ClaimsDigest {
		return fmt.Errorf("claims digest %x, recomputed %x", e.ClaimsDigest, eff.ClaimsDigest)
	}
	if got := eff.Writes.Canonical(); !got.Equal(e.Writes) {
		return fmt.Errorf("write set differs from re-execution: %w", diffWrites(e.Writes, got))
	}
	if !bytes.Equal(eff.Result, e.Result) {
		return fmt.Errorf("recorded answer %q, re-executed %q", e.Result, eff.Result)
	}
	return nil
}

// legacySafetyOutcome names the wall-clock or heap code an older build
// recorded as a script failure in a proposal written by ws, or "".
func legacySafetyOutcome(ws engine.WriteSet) string {
	for _, w := range ws {
		if w.Table != gov.TableProposals || w.Delete {
			continue
		}
		var p struct {
			Failure *struct {
				Reason string `json:"reason"`
			} `json:"failure"`
			VoteFailures map[string]struct {
				Reason string `json:"reason"`
			} `json:"vote_failures"`
		}
		if json.Unmarshal(w.Value, &p) != nil {
			continue
		}
		reasons := []string{}
		if p.Failure != nil {
			reasons = append(reasons, p.Failure.Reason)
		}
		for _, f := range p.VoteFailures {
			reasons = append(reasons, f.Reason)
		}
		for _, reason := range reasons {
			for _, code := range []string{constitution.CodeLegacyScriptTimeout, constitution.CodeLegacyScriptMemoryLimit} {
				if strings.HasPrefix(reason, code+": ") || strings.Contains(reason, ": "+code+": ") {
					return code
				}
			}
		}
	}
	return ""
}

// node re-derives a node join (its request, evidence and statement
// verified again at the entry's time, then decided against the state
// before it: trusted host data or the join policy then in force) or a
// delete (the retirement covered by a signature, by this replay's fold).
func (r *Replayer) node(e *engine.Entry) error {
	facts := engine.Facts{TxID: e.TxID(), Time: e.Time()}
	var cmd engine.Command
	if e.Kind == engine.KindNodeJoin {
		if r.joinSettings == nil {
			var g exec.ServiceSettings
			if v, ok, _ := r.state.Get(engine.TableService, exec.KeyServiceSettings); ok {
				if err := json.Unmarshal(v, &g); err != nil {
					return fmt.Errorf("genesis settings: %w", err)
				}
			}
			cert, _, _ := r.state.Get(engine.TableService, exec.KeyServiceCertificate)
			s, err := nodes.SettingsFrom(g.Virtual, g.DevSNPRoot, cert)
			if err != nil {
				return err
			}
			r.joinSettings = &s
		}
		j, err := nodes.VerifyJoin(e.Input, *r.joinSettings, e.Time(), r.limits)
		if err != nil {
			return fmt.Errorf("join request does not verify: %w", err)
		}
		cmd = j
	} else {
		id, err := nodes.ParseDelete(e.Input)
		if err != nil {
			return err
		}
		committed := false
		if rec, ok, err := nodes.ReadRecord(r.state, id); err == nil && ok {
			committed = r.nodes.RetiredCommitted(rec, "")
		}
		cmd = nodes.Delete{NodeID: id, RetiredCommitted: committed}
	}
	eff, err := cmd.Execute(r.state, facts)
	if err != nil {
		return fmt.Errorf("re-execution refuses the %s: %w", e.Kind, err)
	}
	if eff.Replayed {
		return fmt.Errorf("the node was already known: a poll has no entry")
	}
	if got := eff.Writes.Canonical(); !got.Equal(e.Writes) {
		return fmt.Errorf("write set differs from re-execution: %s", diffWrites(e.Writes, got))
	}
	if !bytes.Equal(eff.Result, e.Result) {
		return fmt.Errorf("recorded answer %s, re-executed %s", e.Result, eff.Result)
	}
	return nil
}

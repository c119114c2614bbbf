package audit

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"encoding/pem"
	"fmt"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/merkle"
	"github.com/gavelhq/gavel/engine/receipt"
)

// Divergence is the first point where the log is not what it claims.
type Divergence struct {
	TxID   string // the first bad transaction (or "seq N" when undecodable)
	Reason string
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
}

// VoidEntry is a void entry the replay found.
type VoidEntry struct {
	Seqno  uint64 `json:"seqno"`
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
	last            *engine.Entry
	sum             Summary
	// state holds every table but the statements index, which nothing
	// executed reads: governance is re-executed against it.
	state  constitution.MemState
	limits constitution.Limits
}

// NewReplayer returns a replayer for a log starting at seqno 1.
func NewReplayer(verifyStatement StatementVerifier) *Replayer {
	tree := merkle.New()
	tree.Append(engine.Digest{}, nil) // CCF's zero leaf 0: leaf index = seqno
	return &Replayer{verifyStatement: verifyStatement, tree: tree, state: constitution.MemState{}, trusted: engine.NewTrustedNodes(),
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

// SetScriptLimits sets the limits for re-executed constitution calls (the
// service's own, by default DefaultLimits).
func (r *Replayer) SetScriptLimits(l constitution.Limits) { r.limits = l }

func (r *Replayer) apply(ws engine.WriteSet) {
	for _, w := range ws {
		if w.Table == engine.TableStatements {
			continue
		}
		r.state.Apply(engine.WriteSet{w})
	}
}

// governance re-executes a member's request against the state before it,
// with the constitution then in force, and compares the write sets.
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
	if err != nil {
		return fmt.Errorf("re-execution refuses the request: %w", err)
	}
	if eff.Replayed {
		return fmt.Errorf("the ledger already held this request")
	}
	if got := eff.Writes.Canonical(); !got.Equal(e.Writes) {
		return fmt.Errorf("write set differs from re-execution: %s", diffWrites(e.Writes, got))
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
	e, err := r.trusted.OpenEntry(m)
	if err != nil && m.Seq == 1 {
		// Without it nothing after can be authenticated: not a history.
		return &Divergence{TxID: "seq 1", Reason: "the first message is not an authenticated genesis entry: " + err.Error()}
	}
	if err != nil {
		r.tree.Append(engine.VoidLeaf, nil)
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
		return &Divergence{TxID: tx, Reason: fmt.Sprintf(format, args...)}
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
	if r.last != nil {
		if e.View < r.last.View {
			return bad("view goes back from %d", r.last.View)
		}
		if e.TimeMillis < r.last.TimeMillis {
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
		if err := r.governance(e); err != nil {
			return bad("%v", err)
		}
		r.sum.Governance++
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
	r.tree.Append(e.Leaf(), nil)
	r.apply(e.Writes)
	r.last = e
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
	cmd, err := r.verifyStatement(e.Input, engine.Facts{TxID: e.TxID(), Time: e.Time()})
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
		return fmt.Errorf("write set differs from re-execution: %s", diffWrites(e.Writes, got))
	}
	if !bytes.Equal(eff.Result, e.Result) {
		return fmt.Errorf("recorded answer %q, re-executed %q", e.Result, eff.Result)
	}
	return nil
}

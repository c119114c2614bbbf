package sequencer

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/fold"
	"github.com/gavelhq/gavel/engine/merkle"
	"github.com/gavelhq/gavel/engine/natslog"
)

// This file is the sequencer's core, in the style of etcd raft's RawNode:
// it does no I/O, starts no goroutine, reads no clock and draws no random
// number. The driver (sequencer.go) hands it the applied ledger, the
// requests, the time and fresh nonces, and the log's answers; it hands back
// what to append (with which expected last sequence), what to fold into the
// store, and whom to answer with what. The core owns every decision:
// execution order, batch limits, signature cadence, the pipelined round,
// matching an unanswered append against the log, re-execution, stepping
// down and giving up.
//
// The driver's cycle:
//
//	r, err := c.plan(in)            // execute; r.sign set when a signature is due
//	if r.sign != nil { c.signed(r, signer.SignRoot(...)) }
//	r.encode()
//	c.sent(r)                       // append r.data after expected last r.expected
//	p, err := c.open(in)            // the next round, on top of the flight
//	c.extend(p, more, now, nonces)  // ... as requests arrive, until the ack
//	rd := c.advance(outcome, p)
//	// if rd.landed: c.seal(p, now, false), sign, encode, c.sent(p);
//	// fold rd.apply into the store, then send rd.answers, then act on
//	// rd.stop / rd.fault; c.takeRedo() is what to execute next, if any
//
// At most one round is in the log's hands (the flight); the next one is
// open on top of it (pending), takes requests until the flight lands, and
// is then sealed and sent. The chain stays exact: pending's expected last
// sequence is the flight's end, and it is sent only after the flight's ack.

// base is the ledger a round executes on top of: the applied state, or it
// and the round in flight.
type base struct {
	reader engine.StateReader
	pos    fold.Position
	tree   *merkle.Tree // leaves 0..pos.Seqno
}

// answer is a reply the driver sends.
type answer struct {
	req *request
	res result
}

// signDue asks the driver for a signature over a root (the service key is
// outside the core: signing draws randomness and may be remote).
type signDue struct {
	root engine.Digest
	tx   engine.TxID
	iat  time.Time
}

// round is an executed batch, ready to append once sealed.
type round struct {
	reqs     []*request      // executed, in order
	entries  []*engine.Entry // to append after expected
	owners   []*request      // owners[i] is answered by entries[i]; nil for a signature
	settled  []answer        // refused or replayed: answered once the round is decided
	expected uint64          // the log's last sequence before entries
	after    base            // the ledger once entries are in
	overlay  *overlay        // after.reader
	sign     *signDue        // set until the driver has signed (core.signed)
	at       time.Time       // the clock value it was sealed at
	nonce    engine.Digest   // for the signature entry
	size     int             // bytes of the requests' input
	sealed   bool            // takes no more requests (core.seal)
	redo     bool            // a re-execution of requests whose round did not land
	retires  bool            // an entry retires the sequencer's node: nothing follows it
	subjects []string
	data     [][]byte
	// The driver's signing of its messages ahead of the append
	// (Presigner): messages before presigned are handed to a signing
	// goroutine, which stops once the round is sent.
	presigned int
	sent      atomic.Bool
}

// planInput is what a round is planned from.
type planInput struct {
	ledger base      // the applied ledger; a round in flight is built upon instead
	now    time.Time // the clock
	reqs   []*request
	nonces []engine.Digest // fresh, at least len(reqs)+1
	probe  bool            // sign even a signed root: the write that tests a faulty path
	redo   bool            // reqs came from takeRedo
}

// core is the sequencer's state machine (see the top of this file).
type core struct {
	cfg     Config
	view    uint64
	canSign bool

	flight    *round     // appended; the log has not answered
	redo      []*request // requests of rounds that did not land, executed again before new ones
	attempts  int        // failed executions of redo's first chunk
	lastSigAt time.Time  // clock value of the last signature entry planned
	signerErr error      // the last signing failure; nil once one works
}

func newCore(cfg Config, view uint64, canSign bool, now time.Time) *core {
	return &core{cfg: cfg.WithDefaults(), view: view, canSign: canSign, lastSigAt: now}
}

// admits reports whether a batch of n requests holding size bytes of input
// takes one more of more bytes: at most MaxBatch-1 requests (room for a
// signature entry) and MaxBatchBytes of input, and always a first one.
func (c *core) admits(n, size, more int) bool {
	return n == 0 || (n < c.cfg.MaxBatch-1 && size+more <= c.cfg.MaxBatchBytes)
}

// fit is how many of reqs one round takes (see admits).
func (c *core) fit(reqs []*request) int {
	size := 0
	for i, r := range reqs {
		n := len(r.cmd.Input())
		if !c.admits(i, size, n) {
			return i
		}
		size += n
	}
	return len(reqs)
}

// takeRedo is the next chunk of requests to execute again, or nil.
func (c *core) takeRedo() []*request {
	n := c.fit(c.redo)
	chunk := c.redo[:n:n]
	c.redo = c.redo[n:]
	if len(c.redo) == 0 {
		c.redo = nil
	}
	return chunk
}

func (c *core) facts(seqno uint64, now int64) engine.Facts {
	return engine.Facts{TxID: engine.TxID{View: c.view, Seqno: seqno}, Time: time.UnixMilli(now).UTC()}
}

// plan executes in.reqs in order on top of the flight (or the applied
// ledger), each seeing the writes of those before it, and asks for a
// signature entry when one is due (see seal).
func (c *core) plan(in planInput) (*round, error) {
	r, err := c.open(in)
	if err != nil {
		return nil, err
	}
	c.seal(r, in.now, in.probe)
	return r, nil
}

// open is plan without the signature decision: a round planned on top of
// the flight stays open, taking more requests (extend) while the flight
// is in the log's hands, and is sealed once it lands. Under load a round
// so holds what arrived during one append: rounds grow with the queue.
func (c *core) open(in planInput) (*round, error) {
	b := in.ledger
	if c.flight != nil {
		b = c.flight.after
	}
	r := &round{expected: b.pos.Seqno, overlay: newOverlay(b.reader), at: in.now, redo: in.redo}
	r.after = base{reader: r.overlay, pos: b.pos, tree: b.tree.Clone()}
	// Nothing may follow a retirement in flight: this round takes requests
	// but executes none (if the flight lands they are refused, see advance;
	// if not, they are executed again).
	r.retires = c.flight != nil && c.flight.retires
	if err := c.execute(r, in.reqs, in.now, in.nonces); err != nil {
		return nil, err
	}
	if r.redo && len(r.entries) == 0 {
		c.attempts = 0 // decided without the log
	}
	return r, nil
}

// extend executes reqs into r, an open round, after those it holds: as
// if they had come with them (nonces: fresh, at least len(reqs)+1).
func (c *core) extend(r *round, reqs []*request, now time.Time, nonces []engine.Digest) error {
	if r.sealed {
		return engine.Errorf(engine.KindInternal, "InternalError", "a sealed round takes no more requests")
	}
	return c.execute(r, reqs, now, nonces)
}

// execute runs reqs in order on r's ledger. Engine time never goes back.
// Once an entry of r retires the sequencer's node, the rest wait
// unexecuted: answered once the round is decided (advance).
func (c *core) execute(r *round, reqs []*request, clock time.Time, nonces []engine.Digest) error {
	now := max(clock.UnixMilli(), r.after.pos.TimeMillis)
	for _, req := range reqs {
		r.reqs = append(r.reqs, req)
		r.size += len(req.cmd.Input())
		if r.retires {
			continue
		}
		next := r.after.pos.Seqno + 1
		eff, err := req.cmd.Execute(r.overlay, c.facts(next, now))
		if err != nil {
			r.settled = append(r.settled, answer{req, result{err: err}})
			continue
		}
		if eff.Replayed {
			r.settled = append(r.settled, answer{req, result{out: Outcome{Result: eff.Result}}})
			continue
		}
		// A request executed again keeps the nonce of its first entry: if
		// that attempt lands late (a new stream leader applying its
		// predecessor's entries after the read-back), this attempt's refusal
		// reads back as landed, instead of writing the request twice.
		if !req.hasNonce {
			req.nonce, req.hasNonce, nonces = nonces[0], true, nonces[1:]
		}
		e := &engine.Entry{Kind: req.cmd.Kind(), View: c.view, Seqno: next, TimeMillis: now,
			Nonce: req.nonce, Input: req.cmd.Input(), Writes: eff.Writes, ClaimsDigest: eff.ClaimsDigest, Result: eff.Result}
		if err := r.add(e, req); err != nil {
			return err
		}
		r.retires = retiresNode(eff.Writes, c.cfg.NodeID)
	}
	r.nonce = nonces[0]
	return nil
}

// seal closes r at the clock value now and asks for a signature entry
// when one is due.
func (c *core) seal(r *round, now time.Time, probe bool) {
	r.sealed, r.at = true, now
	// Sign every SignEvery entries, and no later than SignInterval after
	// the last signature while entries wait (the driver's timer plans an
	// empty round for an idle sequencer, this covers a busy one). A probe
	// signs even an already signed root: it is the write that finds out
	// whether the log takes writes again.
	unsigned := r.after.pos.Unsigned()
	due := unsigned >= uint64(c.cfg.SignEvery) ||
		(unsigned > 0 && (len(r.reqs) == 0 || now.Sub(c.lastSigAt) >= c.cfg.SignInterval)) ||
		(probe && len(r.entries) == 0)
	// A retired node's signature would not authenticate: the successor's
	// view change signs what it left.
	if due && c.canSign && !r.retires {
		// Leaf 0 is CCF's zero leaf: the tree has next leaves before seqno next.
		r.sign = &signDue{root: r.after.tree.Root(), tx: engine.TxID{View: c.view, Seqno: r.after.pos.Seqno + 1}, iat: time.UnixMilli(max(now.UnixMilli(), r.after.pos.TimeMillis))}
	}
}

// add seals e and folds it into the round's ledger (fold: the same
// definition the store and the auditor apply).
func (r *round) add(e *engine.Entry, owner *request) error {
	e.Seal()
	if err := fold.Apply(&r.after.pos, r.after.tree, r.overlay, e, nil); err != nil {
		return engine.Wrap(engine.KindInternal, "InternalError", err, "entry %s does not fold", e.TxID())
	}
	r.entries = append(r.entries, e)
	r.owners = append(r.owners, owner)
	return nil
}

// signed completes r with the driver's signature over r.sign (or records
// that the signer failed: the round goes unsigned). Without r.sign it does
// nothing.
func (c *core) signed(r *round, cose []byte, err error) error {
	due := r.sign
	if due == nil {
		return nil
	}
	r.sign = nil
	if err != nil {
		c.signerErr = engine.Wrap(engine.KindUnavailable, CodeSignerFailed, err, "the service key cannot sign").Marked(ErrSignerFailed)
		return nil
	}
	c.signerErr = nil
	c.lastSigAt = r.at
	return r.add(&engine.Entry{Kind: engine.KindSignature, View: c.view, Seqno: due.tx.Seqno, TimeMillis: r.after.pos.TimeMillis, Nonce: r.nonce,
		Writes: engine.WriteSet{{Table: engine.TableSignatures, Key: "", Value: cose}}}, nil)
}

// encode fixes the messages of the round's entries not yet encoded
// (entries are final once added).
func (r *round) encode() error {
	for _, e := range r.entries[len(r.data):] {
		b, err := e.Encode()
		if err != nil {
			return engine.Wrap(engine.KindInternal, "InternalError", err, "entry does not encode")
		}
		r.subjects, r.data = append(r.subjects, e.Subject()), append(r.data, b)
	}
	return nil
}

// rebase makes a pending round read the store once the flight under it
// has been applied there.
func (r *round) rebase(applied engine.StateReader) { r.overlay.base = applied }

// sent records that r was appended with expected last sequence r.expected.
func (c *core) sent(r *round) { c.flight = r }

// answers are the replies of a round whose first n entries landed.
func (r *round) answers(n int) []answer {
	out := make([]answer, 0, n+len(r.settled))
	for i, e := range r.entries[:n] {
		if r.owners[i] != nil {
			out = append(out, answer{r.owners[i], result{out: Outcome{TxID: e.TxID(), Result: e.Result}}})
		}
	}
	if n == len(r.entries) {
		out = append(out, r.settled...)
	}
	return out
}

// acked is the log's answer to the flight as the core takes it: an ack
// naming another last sequence than the flight's is in doubt, resolved by
// reading the log like any other.
func (c *core) acked(last uint64, err error) error {
	if want := c.flight.expected + uint64(len(c.flight.entries)); err == nil && last != want {
		return engine.Errorf(engine.KindUnavailable, "CommitOutcomeUnknown",
			"the log acknowledged last sequence %d; the round ends at %d", last, want).Marked(natslog.ErrCommitOutcomeUnknown)
	}
	return err
}

// logged is what the log holds at one seqno, as the driver read it back.
type logged struct {
	ok    bool // the log holds an entry there
	view  uint64
	nonce engine.Digest
}

// outcome is the log's answer to the flight.
type outcome struct {
	err error // nil: acknowledged
	// After an error the driver has caught the applied ledger up with the
	// log (or failed to: readErr) and read back the flight's seqnos.
	readErr error
	ledger  base
	logged  []logged // logged[i] is the log at the flight's entries[i].Seqno
}

// ready is what an outcome asks of the driver, in this order: fold apply
// into the store (only on an ack: catch-up has applied the rest), send
// answers, then act on stop or fault.
type ready struct {
	landed  bool            // the whole flight is in the log: pending stays valid
	entries int             // entries of the flight in the log
	apply   []*engine.Entry // acknowledged: fold these into the store first
	answers []answer
	// stop: a newer view has written; the sequencer stops (answers hold
	// the refusals). fault: the write path is faulty; the driver records
	// it. retry: the cause of a refusal whose requests wait in redo.
	stop, fault, retry error
	// kind names the failure for the log: "refused" (another writer's
	// entry took the place) or "in doubt" (no entry of ours, none of
	// anyone's where the log claimed one: a stalled leader, a lost answer).
	kind string
}

// advance takes the log's answer for the flight. pending is the round
// planned on top of the flight (nil if none): it stays valid only if the
// whole flight landed, else its requests are executed again too.
func (c *core) advance(o outcome, pending *round) ready {
	f := c.flight
	c.flight = nil
	if o.err == nil {
		if f.redo {
			c.attempts = 0
		}
		rd := ready{landed: true, entries: len(f.entries), apply: f.entries, answers: f.answers(len(f.entries))}
		c.retired(&rd, f, pending)
		return rd
	}
	// Refused or in doubt: the log, read back, says what landed. Nonces are
	// random, so an entry with ours at its seqno is ours.
	n := 0
	if o.readErr == nil {
		for n < len(f.entries) && n < len(o.logged) && o.logged[n].ok &&
			o.logged[n].nonce == f.entries[n].Nonce && o.logged[n].view == f.entries[n].View {
			n++
		}
	}
	rd := ready{entries: n, answers: f.answers(n)}
	if n == len(f.entries) {
		if f.redo {
			c.attempts = 0
		}
		rd.landed = true
		c.retired(&rd, f, pending)
		return rd
	}
	rd.kind = "in doubt"
	if o.readErr == nil && o.ledger.pos.Seqno > f.expected+uint64(n) {
		rd.kind = "refused"
	}
	// What is left: the flight's requests not answered, in order, then the
	// pending round's.
	answered := make(map[*request]bool, len(rd.answers))
	for _, a := range rd.answers {
		answered[a.req] = true
	}
	var left []*request
	for _, q := range f.reqs {
		if !answered[q] {
			left = append(left, q)
		}
	}
	if pending != nil {
		left = append(left, pending.reqs...)
	}
	fail := func(reqs []*request, err error) {
		for _, q := range reqs {
			rd.answers = append(rd.answers, answer{q, result{err: err}})
		}
	}
	cause := o.err
	switch {
	case o.readErr != nil:
		cause = engine.Wrap(engine.KindUnavailable, CodeLogUnavailable, o.readErr,
			"the ledger stream could not be read back after a failed append (%v); the request may have been committed", o.err).Marked(ErrLogUnavailable)
	case o.ledger.pos.View > c.view:
		rd.stop = engine.Errorf(engine.KindUnavailable, "NotPrimary", "a sequencer in view %d has written; this one (view %d) steps down", o.ledger.pos.View, c.view).Marked(ErrNotPrimary)
		fail(left, rd.stop)
		rd.answers = append(rd.answers, c.failRedoWith(stopErrorFor(rd.stop))...)
		return rd
	}
	if _, _, isFault := faultOf(cause); isFault {
		// Fail fast: a fault does not clear by retrying now.
		rd.fault = cause
		fail(left, cause)
		c.failRedo(&rd, cause)
		return rd
	}
	if f.redo {
		c.attempts++
		if c.attempts >= c.cfg.MaxAttempts {
			c.attempts = 0
			e := engine.Wrap(engine.KindUnavailable, CodeCommitFailed, cause, "the batch could not be committed").Marked(ErrCommitFailed)
			rd.fault = e
			fail(left, e)
			c.failRedo(&rd, e)
			return rd
		}
	}
	rd.retry = cause
	c.redo = append(left, c.redo...)
	return rd
}

// retired ends the sequencer once a round that retires its node has
// landed: the requests that round left unexecuted, the pending round's
// and redo's are refused as a stopped sequencer's (the replica sends
// them to the successor).
func (c *core) retired(rd *ready, f, pending *round) {
	if !f.retires {
		return
	}
	rd.stop = engine.Errorf(engine.KindUnavailable, "NodeRetired",
		"this replica's node %s is retired as of %s; the successor sequences", c.cfg.NodeID, f.entries[len(f.entries)-1].TxID()).Marked(ErrRetired)
	refusal := stopErrorFor(rd.stop)
	answered := make(map[*request]bool, len(rd.answers))
	for _, a := range rd.answers {
		answered[a.req] = true
	}
	left := slices.Clone(f.reqs)
	if pending != nil {
		left = append(left, pending.reqs...)
	}
	for _, q := range left {
		if !answered[q] {
			rd.answers = append(rd.answers, answer{q, result{err: refusal}})
		}
	}
	rd.answers = append(rd.answers, c.failRedoWith(refusal)...)
}

// retiresNode says whether ws makes node id no longer a Trusted service
// node.
func retiresNode(ws engine.WriteSet, id string) bool {
	if id == "" {
		return false
	}
	for _, w := range ws {
		if w.Table == engine.TableNodes && w.Key == id && (w.Delete || !engine.IsTrustedServiceNode(id, w.Value)) {
			return true
		}
	}
	return false
}

// failRedoWith empties redo, returning the refusals of its requests.
func (c *core) failRedoWith(err error) []answer {
	out := make([]answer, 0, len(c.redo))
	for _, q := range c.redo {
		out = append(out, answer{q, result{err: err}})
	}
	c.redo = nil
	return out
}

// failRedo refuses the requests still waiting to be executed again once
// the write path is faulty: they would meet the same fault.
func (c *core) failRedo(rd *ready, cause error) {
	code, msg, _ := faultOf(cause)
	rd.answers = append(rd.answers, c.failRedoWith((&Fault{Code: code, Message: msg, Err: cause}).Error())...)
}

// orphaned takes the log's answer (err, through acked) for a flight sent
// on top of a round that was then acknowledged but could not be applied
// (the sequencer stops). It was executed on the log's state, so what of
// it landed is committed: an ack says all of it; after an error, read
// (the log at its seqnos, read back; nil: unreadable) says which entries
// are ours. The rest is not in the log and is refused as stopped; if the
// log could not be read, its requests are told the outcome is unknown.
func (c *core) orphaned(err error, read []logged) []answer {
	f := c.flight
	c.flight = nil
	if err == nil {
		return f.answers(len(f.entries))
	}
	if read == nil {
		doubt := engine.Wrap(engine.KindUnavailable, "CommitOutcomeUnknown", err,
			"the sequencer stopped and the log could not be read; the request may have been committed").Marked(natslog.ErrCommitOutcomeUnknown)
		out := make([]answer, 0, len(f.reqs))
		for _, q := range f.reqs {
			out = append(out, answer{q, result{err: doubt}})
		}
		return out
	}
	n := 0
	for n < len(f.entries) && n < len(read) && read[n].ok && read[n].nonce == f.entries[n].Nonce && read[n].view == f.entries[n].View {
		n++
	}
	out := f.answers(n)
	answered := make(map[*request]bool, len(out))
	for _, a := range out {
		answered[a.req] = true
	}
	for _, q := range f.reqs {
		if !answered[q] {
			out = append(out, answer{q, result{err: errStopped}})
		}
	}
	return out
}

// applyFailed is the fatal error (and the refusals) of a flight that was acknowledged but
// could not be folded into the store. Its answers stand (it is
// committed); the pending round, executed on writes the store does not
// hold, is refused: it was never sent, so that loses nothing.
func (c *core) applyFailed(entries []*engine.Entry, err error, pending *round) ([]answer, error) {
	first, last := entries[0].Seqno, entries[len(entries)-1].Seqno
	fatal := engine.Wrap(engine.KindInternal, "ApplyFailed", err,
		"entries %d..%d are committed but could not be applied to the state", first, last).Marked(ErrApplyFailed)
	var out []answer
	if pending != nil {
		refusal := stopErrorFor(fatal)
		for _, q := range pending.reqs {
			out = append(out, answer{q, result{err: refusal}})
		}
	}
	return out, fatal
}

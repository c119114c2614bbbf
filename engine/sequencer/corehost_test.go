package sequencer

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/fold"
	"github.com/gavelhq/gavel/engine/merkle"
	"github.com/gavelhq/gavel/engine/natslog"
)

// This file is a driver for the core made of plain data: the log is a
// slice, the applied state a fold of a prefix of it in memory, the clock a
// number, nonces a counter, the signer a hash. It speaks the small language
// of testdata/core/*.txt (see runCoreCommand) and checks the invariants
// after every command.

// kput writes one key and refuses an existing one, so that re-execution on
// a state that moved is observable. Its input is "name=value"; its key is
// the name up to a '#' (a#2 is another request for key a).
type kput struct{ name, key, value string }

func (p kput) Kind() engine.EntryKind { return engine.KindStatement }
func (p kput) Input() []byte          { return []byte(p.name + "=" + p.value) }
func (p kput) Execute(st engine.StateReader, f engine.Facts) (engine.Effect, error) {
	if _, ok, err := st.Get("test", p.key); err != nil {
		return engine.Effect{}, err
	} else if ok {
		return engine.Effect{}, engine.Errorf(engine.KindConflict, "KeyExists", "%s exists", p.key)
	}
	res, _ := json.Marshal(f.TxID.String())
	return engine.Effect{Writes: engine.WriteSet{{Table: "test", Key: p.key, Value: []byte(p.value)}}, Result: res}, nil
}

// selfNode is the node id of the host's sequencer.
const selfNode = "n-self"

// retireSelf writes its sequencer's node record as Retired: the round
// holding it is the sequencer's last.
type retireSelf struct{ name string }

func (p retireSelf) Kind() engine.EntryKind { return engine.KindStatement }
func (p retireSelf) Input() []byte          { return []byte(p.name) }
func (p retireSelf) Execute(st engine.StateReader, f engine.Facts) (engine.Effect, error) {
	return engine.Effect{Writes: engine.WriteSet{{Table: engine.TableNodes, Key: selfNode,
		Value: []byte(`{"status":"Retired","role":"service"}`)}}, Result: []byte(`"retired"`)}, nil
}

// memTables makes a MemState the tables of a fold.
type memTables struct{ constitution.MemState }

func (t memTables) Set(table, key string, v []byte) error {
	t.Apply(engine.WriteSet{{Table: table, Key: key, Value: v}})
	return nil
}

func (t memTables) Delete(table, key string) error {
	t.Apply(engine.WriteSet{{Table: table, Key: key, Delete: true}})
	return nil
}

// memLedger is a fold of a prefix of a log.
type memLedger struct {
	state constitution.MemState
	pos   fold.Position
	tree  *merkle.Tree
}

func newMemLedger() *memLedger {
	t := merkle.New()
	t.Append(engine.Digest{}, nil)
	return &memLedger{state: constitution.MemState{}, tree: t}
}

func (l *memLedger) apply(e *engine.Entry) error {
	return fold.Apply(&l.pos, l.tree, memTables{l.state}, e, nil)
}

func (l *memLedger) base() base { return base{reader: l.state, pos: l.pos, tree: l.tree.Clone()} }

// coreHost drives a core over memory.
type coreHost struct {
	t       testing.TB
	cfg     Config
	c       *core
	log     []*engine.Entry // the truth
	late    []*engine.Entry // stored, not shown yet: in the log at the next landing
	applied *memLedger      // what the driver has folded of it
	queue   []*request
	names   map[*request]string
	answers map[string]result // every answer given, by request name
	pending *round            // planned on top of the flight
	now     time.Time
	nonces  uint64
	broken  bool  // the signer fails
	stopped error // why the driver stopped (a newer view, a failed apply)
	foreign int
}

func newCoreHost(t testing.TB, cfg Config, view uint64) *coreHost {
	now := time.UnixMilli(1_000_000).UTC()
	h := &coreHost{t: t, cfg: cfg.WithDefaults(), applied: newMemLedger(), names: map[*request]string{}, answers: map[string]result{}, now: now}
	h.c = newCore(h.cfg, view, true, now)
	return h
}

func (h *coreHost) nonce() engine.Digest {
	h.nonces++
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h.nonces)
	return sha256.Sum256(b[:])
}

// catchUp folds what the log holds past the applied position.
func (h *coreHost) catchUp() {
	for _, e := range h.log[h.applied.pos.Seqno:] {
		if err := h.applied.apply(e); err != nil {
			h.t.Fatalf("catch-up: %v", err)
		}
	}
}

func (h *coreHost) deliver(out *strings.Builder, as []answer) {
	for _, a := range as {
		name := h.names[a.req]
		if _, dup := h.answers[name]; dup {
			h.t.Fatalf("%s answered twice", name)
		}
		h.answers[name] = a.res
		fmt.Fprintf(out, "answer %s: %s\n", name, describe(a.res))
	}
}

func describe(r result) string {
	if errors.Is(r.err, ErrUnwritable) {
		return engine.AsError(r.err).Code + " (refused at once)"
	}
	if r.err != nil {
		return engine.AsError(r.err).Code
	}
	if r.out.TxID.Seqno == 0 {
		return "replayed"
	}
	return r.out.TxID.String()
}

func (h *coreHost) entryName(e *engine.Entry) string {
	if e.Kind == engine.KindSignature {
		return "sig"
	}
	k, v, _ := strings.Cut(string(e.Input), "=")
	if v == "foreign" {
		return k + "(foreign)"
	}
	return k
}

func (h *coreHost) describeRound(r *round) string {
	parts := make([]string, len(r.entries))
	for i, e := range r.entries {
		parts[i] = fmt.Sprintf("%s@%s", h.entryName(e), e.TxID())
	}
	if len(parts) == 0 {
		parts = []string{"(nothing)"}
	}
	return fmt.Sprintf("after %d: %s", r.expected, strings.Join(parts, " "))
}

// plan is the driver's step: requests to execute again first, else what
// the batch limits admit of the queue.
func (h *coreHost) plan(out *strings.Builder, probe bool) {
	var reqs []*request
	redo := h.c.redo != nil
	switch {
	case redo && h.c.flight != nil:
		h.t.Fatal("the driver executes again only once nothing is in flight")
	case redo:
		reqs = h.c.takeRedo()
	default:
		n := h.c.fit(h.queue)
		reqs, h.queue = h.queue[:n:n], h.queue[n:]
	}
	nonces := make([]engine.Digest, len(reqs)+1)
	for i := range nonces {
		nonces[i] = h.nonce()
	}
	in := planInput{ledger: h.applied.base(), now: h.now, reqs: reqs, nonces: nonces, probe: probe, redo: redo}
	if h.c.flight != nil {
		// Open on top of the flight: sealed (and signed) once it lands.
		r, err := h.c.open(in)
		if err != nil {
			h.t.Fatal(err)
		}
		h.pending = r
		fmt.Fprintf(out, "pending %s\n", h.describeRound(r))
		return
	}
	r, err := h.c.plan(in)
	if err != nil {
		h.t.Fatal(err)
	}
	h.finish(r)
	h.send(out, r)
}

// extend is the driver taking more of the queue into the pending round,
// as far as the batch limits admit.
func (h *coreHost) extend(out *strings.Builder) {
	r := h.pending
	if r == nil {
		h.t.Fatal("no pending round to extend")
	}
	n := 0
	for size := r.size; n < len(h.queue) && h.c.admits(len(r.reqs)+n, size, len(h.queue[n].cmd.Input())); n++ {
		size += len(h.queue[n].cmd.Input())
	}
	reqs := h.queue[:n:n]
	h.queue = h.queue[n:]
	nonces := make([]engine.Digest, len(reqs)+1)
	for i := range nonces {
		nonces[i] = h.nonce()
	}
	if err := h.c.extend(r, reqs, h.now, nonces); err != nil {
		h.t.Fatal(err)
	}
	fmt.Fprintf(out, "pending %s\n", h.describeRound(r))
}

// finish signs a sealed round when the core asks, and encodes it.
func (h *coreHost) finish(r *round) {
	if r.sign != nil {
		var serr error
		var cose []byte
		if h.broken {
			serr = errors.New("signer broken")
		} else {
			cose = []byte(fmt.Sprintf("sig %s %x", r.sign.tx, r.sign.root[:4]))
		}
		if err := h.c.signed(r, cose, serr); err != nil {
			h.t.Fatal(err)
		}
	}
	if err := r.encode(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *coreHost) send(out *strings.Builder, r *round) {
	if len(r.entries) == 0 {
		fmt.Fprintf(out, "nothing to append\n")
		h.deliver(out, r.settled)
		return
	}
	h.c.sent(r)
	fmt.Fprintf(out, "append %s\n", h.describeRound(r))
}

// land gives the core the log's answer for the flight. stored is how many
// of its entries the log took (when expected still matches); err is the
// log's error (nil: an ack); unreadable makes the read-back fail.
func (h *coreHost) land(out *strings.Builder, stored int, err error, unreadable, applyFails bool) ready {
	return h.landAt(out, stored, 0, err, unreadable, applyFails, false)
}

// landAt is land with the last sequence an ack names (0: the right one).
func (h *coreHost) landAt(out *strings.Builder, stored int, last uint64, err error, unreadable, applyFails, late bool) ready {
	f := h.c.flight
	if f == nil {
		h.t.Fatal("nothing in flight")
	}
	// Entries a stalled leader took but the log did not show yet (late)
	// appear now: its successor has applied them.
	h.log, h.late = append(h.log, h.late...), nil
	if uint64(len(h.log)) == f.expected && late {
		h.late = append(h.late, f.entries[:stored]...)
	} else if uint64(len(h.log)) == f.expected {
		h.log = append(h.log, f.entries[:stored]...)
	} else if stored > 0 {
		h.t.Fatal("the log moved on: an append after the wrong last sequence stores nothing")
	}
	if last == 0 {
		last = uint64(len(h.log))
	}
	err = h.c.acked(last, err)
	o := outcome{err: err}
	if err != nil {
		if unreadable {
			o.readErr = errors.New("injected: no responders")
		} else {
			h.catchUp()
			o.ledger = h.applied.base()
			for _, e := range f.entries {
				if e.Seqno > uint64(len(h.log)) {
					break
				}
				le := h.log[e.Seqno-1]
				o.logged = append(o.logged, logged{ok: true, view: le.View, nonce: le.Nonce})
			}
		}
	}
	pending := h.pending
	h.pending = nil
	rd := h.c.advance(o, pending)
	if rd.apply != nil {
		if applyFails {
			refusals, fatal := h.c.applyFailed(rd.apply, errors.New("injected: pebble write failed"), pending)
			h.deliver(out, rd.answers)
			h.deliver(out, refusals)
			h.stopped = fatal
			fmt.Fprintf(out, "fatal: %s\n", engine.AsError(fatal).Code)
			return rd
		}
		for _, e := range rd.apply {
			if err := h.applied.apply(e); err != nil {
				h.t.Fatalf("apply: %v", err)
			}
		}
	}
	h.deliver(out, rd.answers)
	switch {
	case rd.stop != nil:
		h.stopped = rd.stop
		fmt.Fprintf(out, "stop: %s\n", engine.AsError(rd.stop).Code)
	case rd.fault != nil:
		code, _, _ := faultOf(rd.fault)
		fmt.Fprintf(out, "fault: %s\n", code)
	case rd.retry != nil:
		fmt.Fprintf(out, "%s: execute again %s\n", rd.kind, strings.Join(h.namesOf(h.c.redo), " "))
	}
	if rd.landed && pending != nil && rd.stop == nil {
		pending.rebase(h.applied.state)
		h.c.seal(pending, h.now, false)
		h.finish(pending)
		h.send(out, pending)
	}
	return rd
}

func (h *coreHost) namesOf(reqs []*request) []string {
	out := make([]string, len(reqs))
	for i, q := range reqs {
		out[i] = h.names[q]
	}
	return out
}

// appendForeign appends an entry another sequencer of view wrote, taking
// key (it bypasses the core: the driver learns of it from the log).
func (h *coreHost) appendForeign(key string, view uint64) {
	h.foreign++
	last := uint64(len(h.log))
	e := &engine.Entry{Kind: engine.KindStatement, View: view, Seqno: last + 1, TimeMillis: h.now.UnixMilli(),
		Input: []byte(key + "=foreign"), Nonce: h.nonce(), Writes: engine.WriteSet{{Table: "test", Key: key, Value: []byte("foreign")}}}
	e.Seal()
	h.log = append(h.log, e)
}

// check is the invariants, after every command: the applied state is the
// fold of a prefix of the log; every committed answer names the entry of
// its own request in the log; no request's key is in the log twice; every
// refused request is not in the log.
func (h *coreHost) check() {
	fresh := newMemLedger()
	for _, e := range h.log[:h.applied.pos.Seqno] {
		if err := fresh.apply(e); err != nil {
			h.t.Fatalf("the log does not fold: %v", err)
		}
	}
	if fresh.pos != h.applied.pos || fresh.tree.Root() != h.applied.tree.Root() {
		h.t.Fatalf("applied %+v, fold of the log %+v", h.applied.pos, fresh.pos)
	}
	seen := map[string]uint64{}
	for _, e := range h.log {
		if e.Kind != engine.KindStatement || strings.HasSuffix(h.entryName(e), "(foreign)") {
			continue
		}
		k := h.entryName(e)
		if s, dup := seen[k]; dup {
			h.t.Fatalf("%s is in the log twice (%d and %d)", k, s, e.Seqno)
		}
		seen[k] = e.Seqno
	}
	for name, res := range h.answers {
		s, inLog := seen[name]
		switch {
		case res.err == nil && res.out.TxID.Seqno != 0 && (!inLog || s != res.out.TxID.Seqno):
			h.t.Fatalf("%s answered %v, the log has it at %d", name, res.out.TxID, s)
		case res.err != nil && inLog:
			h.t.Fatalf("%s refused (%v) but committed at %d", name, res.err, s)
		}
	}
}

func argInt(td *datadriven.TestData, key string, def int) int {
	for _, a := range td.CmdArgs {
		if a.Key == key && len(a.Vals) == 1 {
			n, err := strconv.Atoi(a.Vals[0])
			if err != nil {
				panic(err)
			}
			return n
		}
	}
	return def
}

func hasArg(td *datadriven.TestData, key string) bool {
	return slices.ContainsFunc(td.CmdArgs, func(a datadriven.CmdArg) bool { return a.Key == key })
}

var errWrongLast = engine.Wrap(engine.KindConflict, "WrongLastSequence", natslog.ErrWrongLastSequence, "injected")
var errInDoubt = engine.Wrap(engine.KindUnavailable, "CommitOutcomeUnknown", natslog.ErrCommitOutcomeUnknown, "injected")
var errFull = engine.Errorf(engine.KindUnavailable, "StorageFull", "injected: no space left on device").Marked(natslog.ErrStorageFull)

// runCoreCommand runs one command of the language:
//
//	config max-batch=N max-bytes=N sign-every=N sign-interval-ms=N max-attempts=N view=N
//	                      a new core with these settings (before anything else)
//	submit a b big=300    queue requests for keys a and b, and big with a 300-byte
//	                      value (a#2: another request for key a)
//	plan [probe]          the driver plans a round (what to execute again first, else
//	                      what the batch limits admit of the queue) and appends it, or
//	                      holds it pending while a round is in flight
//	extend                the driver takes what the batch limits admit of the queue
//	                      into the pending round (it stays open until the flight lands)
//	ack [apply-fails] [last=N] [stored=N]
//	                      the log acknowledges the flight (the store then fails to
//	                      apply it; the ack names last sequence N; the log took N entries)
//	refuse                the log refuses the flight: wrong last sequence (after foreign)
//	storage-full          the log refuses the flight: its storage is full
//	indoubt [stored=N] [unreadable] [late]
//	                      no answer; the log took the first N entries (default 0), or
//	                      cannot be read back; late: it shows them only from the
//	                      next landing on (a new leader applying its predecessor's)
//	foreign k [view=N]    another sequencer appends an entry taking key k
//	tick ms=N             the clock moves
//	signer broken|works   the service key fails or works
//	log                   the log, and how far the driver has applied it
func (h *coreHost) run(td *datadriven.TestData) string {
	var out strings.Builder
	if h.stopped != nil && td.Cmd != "log" && td.Cmd != "config" {
		h.t.Fatalf("%s: the driver stopped (%v)", td.Pos, h.stopped)
	}
	switch td.Cmd {
	case "config":
		cfg := DefaultConfig()
		cfg.MaxBatch = argInt(td, "max-batch", cfg.MaxBatch)
		cfg.MaxBatchBytes = argInt(td, "max-bytes", cfg.MaxBatchBytes)
		cfg.SignEvery = argInt(td, "sign-every", cfg.SignEvery)
		cfg.SignInterval = time.Duration(argInt(td, "sign-interval-ms", int(cfg.SignInterval/time.Millisecond))) * time.Millisecond
		cfg.MaxAttempts = argInt(td, "max-attempts", cfg.MaxAttempts)
		cfg.NodeID = selfNode
		*h = *newCoreHost(h.t, cfg, uint64(argInt(td, "view", 1)))
		return "ok"
	case "submit":
		for _, a := range td.CmdArgs {
			v := "v"
			if len(a.Vals) == 1 {
				n, _ := strconv.Atoi(a.Vals[0])
				v = strings.Repeat("v", n)
			}
			key, _, _ := strings.Cut(a.Key, "#")
			q := &request{cmd: kput{a.Key, key, v}}
			if key == "retire" {
				q.cmd = retireSelf{a.Key}
			}
			h.names[q] = a.Key
			h.queue = append(h.queue, q)
		}
		fmt.Fprintf(&out, "queued %d", len(h.queue))
	case "plan":
		h.plan(&out, hasArg(td, "probe"))
	case "extend":
		h.extend(&out)
	case "ack":
		h.landAt(&out, argInt(td, "stored", len(h.c.flight.entries)), uint64(argInt(td, "last", 0)), nil, false, hasArg(td, "apply-fails"), false)
	case "refuse":
		h.land(&out, 0, errWrongLast, false, false)
	case "storage-full":
		h.land(&out, 0, errFull, false, false)
	case "indoubt":
		h.landAt(&out, argInt(td, "stored", 0), 0, errInDoubt, hasArg(td, "unreadable"), false, hasArg(td, "late"))
	case "foreign":
		h.appendForeign(td.CmdArgs[0].Key, uint64(argInt(td, "view", int(h.c.view))))
		fmt.Fprintf(&out, "log at %d", len(h.log))
	case "tick":
		h.now = h.now.Add(time.Duration(argInt(td, "ms", 0)) * time.Millisecond)
		return "ok"
	case "signer":
		h.broken = td.CmdArgs[0].Key == "broken"
		return "ok"
	case "log":
		for _, e := range h.log {
			fmt.Fprintf(&out, "%d %s %s\n", e.Seqno, h.entryName(e), e.TxID())
		}
		fmt.Fprintf(&out, "applied %d, last signature %d", h.applied.pos.Seqno, h.applied.pos.LastSignature)
	default:
		h.t.Fatalf("%s: unknown command %q", td.Pos, td.Cmd)
	}
	h.check()
	return strings.TrimRight(out.String(), "\n")
}

func TestCoreScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata/core", func(t *testing.T, path string) {
		cfg := DefaultConfig()
		cfg.NodeID = selfNode
		h := newCoreHost(t, cfg, 1)
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			h.t = t
			return h.run(td)
		})
	})
}

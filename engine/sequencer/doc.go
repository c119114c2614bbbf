// Package sequencer owns the order of the ledger. One sequencer runs per
// service (on the primary). It takes verified commands, executes them in
// order against the current state, and commits each round as one JetStream
// atomic batch whose first message carries the expected last sequence; a
// request is answered only after that batch's ack. A refused or ambiguous
// batch is resolved by catching up from the log: an entry either landed
// (and is answered as committed) or is executed again — never lost, never
// written twice.
//
// It is built as etcd raft's RawNode is: a pure core (core.go) makes every
// decision — execution, batch limits, signature cadence, the pipelined
// round (open on top of the one in flight until it lands), matching an unanswered append against the log by nonce,
// re-execution, stepping down, giving up — from the applied ledger, the
// requests, a clock value and nonces it is handed, and hands back what to
// append, what to fold into the store and whom to answer. The Sequencer is
// the thin driver around it: its goroutine owns the queue, the timers, the
// log, the store and the replies. Entries are folded with engine/fold, the
// definition the store and the auditor use too.
//
// Unknown state is fatal: if a committed round cannot be applied to the
// store, its requests are answered (they are committed) and Run returns an
// error that is ErrFatal; the caller rebuilds the state from the log and
// starts a sequencer of a higher view. A write path that cannot write (the
// log's storage, an unreadable log, the signer) is a Fault: Submit refuses
// at once with it, and the sequencer probes with a signature entry until a
// write lands.
package sequencer

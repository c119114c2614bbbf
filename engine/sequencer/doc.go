// Package sequencer owns the order of the ledger. One sequencer runs per
// service (on the primary). It takes verified commands, executes them in
// order against the current state, and commits each round as one JetStream
// atomic batch whose first message carries the expected last sequence; a
// request is answered only after that batch's ack. A refused or ambiguous
// batch is resolved by catching up from the log: an entry either landed
// (and is answered as committed) or is executed again — never lost, never
// written twice.
//
// Unknown state is fatal: if a committed round cannot be applied to the
// store, its requests are answered (they are committed) and Run returns an
// error that is ErrFatal; the caller rebuilds the state from the log and
// starts a sequencer of a higher view. A write path that cannot write (the
// log's storage, an unreadable log, the signer) is a Fault: Submit refuses
// at once with it, and the sequencer probes with a signature entry until a
// write lands.
package sequencer

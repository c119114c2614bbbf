// Package sequencer owns the order of the ledger. One sequencer runs per
// service (on the primary). It takes verified commands, executes them in
// order against the current state, and commits each round as one JetStream
// atomic batch whose first message carries the expected last sequence; a
// request is answered only after that batch's ack. A refused or ambiguous
// batch is resolved by catching up from the log: an entry either landed
// (and is answered as committed) or is executed again — never lost, never
// written twice.
package sequencer

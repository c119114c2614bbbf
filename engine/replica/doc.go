// Package replica owns one gavel replica's wiring: the data folder's lock,
// the service identity, the NATS connection (embedded server or external),
// the ledger stream, the pebble state and its catch-up, genesis, and the
// sequencer. It implements handlers.Service. The I/O lives here so that the
// packages it wires do not need any.
//
// On a NATS server it did not start (Config.NATS) a replica is one of
// several, and has a role: the primary holds the leader lease (lease.go)
// and sequences (primary.go); a follower folds the ledger into its own
// state without executing anything (follower.go) and forwards the writes
// it receives to the primary (forward.go). Every replica serves reads from
// its own state, whatever the role.
package replica

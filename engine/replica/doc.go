// Package replica owns one gavel replica's wiring: the data folder's lock,
// the service identity, the NATS connection (embedded server or external),
// the ledger stream, the pebble state and its catch-up, genesis, and the
// sequencer. It implements handlers.Service. The I/O lives here so that the
// packages it wires do not need any.
package replica

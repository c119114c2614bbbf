// Package engine owns gavel's domain types: transaction ids, write sets,
// ledger entries and the typed errors every layer returns. The sub-packages
// hold the machinery (sequencer, Merkle ledger, COSE, JetStream adapter);
// this package holds only what they all speak.
package engine

// Package state owns gavel's durable state in pebble: the tables that write
// sets change, the Merkle tree's nodes, an index of every entry's leaf parts
// and of signature entries, a read model a Projector folds (the node
// projections), and the last applied seqno — all written in one
// pebble batch per applied run of entries, so the state always equals a fold
// of a prefix of the log. Nothing here is the truth: every byte can be
// rebuilt from the ledger stream. Catch-up applies only authenticated
// entries; any other message is a void entry (engine.VoidLeaf, no writes),
// counted and reported.
//
// Get answers from an exact read cache of table values (readcache.go),
// kept in step by Apply, so execution's repeated reads skip pebble; no
// reader can tell it is there.
//
// The Merkle tree is CCF's: leaf 0 is 32 zero bytes and the leaf of the
// entry at seqno s is leaf s, so a signature entry at seqno S signs the
// root of the tree of size S (everything before it).
package state

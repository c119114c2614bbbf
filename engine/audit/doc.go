// Package audit owns the auditor's replay: it folds the ledger from its
// first entry and checks everything a replica claims — every entry's
// authentication by a trusted service node (a message that fails is a
// void entry, listed and folded as the void leaf), seqnos, views and
// times in order, every write-set digest, every leaf, every signature entry
// over the Merkle root, and every registered statement re-executed to the
// same write set. It reads entries handed to it and does no I/O.
package audit

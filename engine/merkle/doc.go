// Package merkle owns gavel's ledger tree: CCF's Merkle tree over leaf
// hashes, kept as a compact range (the right border, O(log n) memory) whose
// completed perfect-subtree nodes are handed to the caller to persist, plus
// inclusion paths in CCF receipt order, past roots and consistency proofs
// read back from those stored nodes.
//
// Hashing is CCF's: leaves arrive already hashed (engine.LeafHash), internal
// nodes are engine.HashChildren = SHA-256(left ‖ right) with no RFC 6962
// prefixes, and the tree has RFC 6962's shape (the left subtree is the largest
// power of two below the size). The package does no I/O: storage is behind
// NodeReader and the put callback of Tree.Append.
//
// Leaf positions are plain indices; which seqno sits at which index is the
// caller's choice. Note that CCF itself starts every service's tree with a
// 32-zero-byte leaf at index 0 so that leaf index = seqno, and a signature at
// seqno S signs the root of the tree of size S (leaves 0..S-1). A real Azure
// receipt pinned in field_test.go has exactly that shape; index = seqno-1
// would give a different path for it.
package merkle

package merkle

import (
	"crypto/sha256"

	"github.com/gavelhq/gavel/engine"
	"github.com/transparency-dev/merkle"
)

// Hasher is CCF's tree hashing as a merkle.LogHasher, for use with the
// transparency-dev proof verifiers.
type Hasher struct{}

var _ merkle.LogHasher = Hasher{}

// emptyRoot is SHA-256 of the empty string, as in RFC 6962. CCF has no
// empty root (merklecpp throws "empty tree does not have a root" and CCF's
// history never is empty), so this value is never signed; it only makes
// Root total.
var emptyRoot = sha256.Sum256(nil)

// EmptyRoot returns SHA-256("").
func (Hasher) EmptyRoot() []byte { r := emptyRoot; return r[:] }

// HashLeaf hashes a leaf preimage, write_set_digest ‖ SHA-256(commit_evidence)
// ‖ claims_digest, into its leaf hash (= engine.LeafHash). Tree never calls
// it: its leaves arrive already hashed and are stored as they are.
func (Hasher) HashLeaf(preimage []byte) []byte {
	h := sha256.Sum256(preimage)
	return h[:]
}

// HashChildren is CCF's internal node, engine.HashChildren.
func (Hasher) HashChildren(l, r []byte) []byte { return hashChildren(l, r) }

// Size is the digest length, 32.
func (Hasher) Size() int { return sha256.Size }

// EmptyRoot is the root reported for a tree with no leaves: SHA-256("").
func EmptyRoot() engine.Digest { return emptyRoot }

func hashChildren(l, r []byte) []byte {
	h := engine.HashChildren(l, r)
	return h[:]
}

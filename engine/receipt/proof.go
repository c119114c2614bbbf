package receipt

import (
	"encoding/hex"
	"strings"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/merkle"
)

// Leaf is the CCF Merkle leaf a receipt proves: its hash is
// SHA-256(WriteSetDigest ‖ SHA-256(CommitEvidence) ‖ ClaimsDigest).
type Leaf struct {
	WriteSetDigest engine.Digest
	CommitEvidence string
	ClaimsDigest   engine.Digest
}

// Hash is the leaf's Merkle hash.
func (l Leaf) Hash() engine.Digest {
	return engine.LeafHash(l.WriteSetDigest, l.CommitEvidence, l.ClaimsDigest)
}

// TxID reads the transaction id from the commit evidence
// "ce:<view>.<seqno>:<64 hex>".
func (l Leaf) TxID() (engine.TxID, error) {
	rest, ok := strings.CutPrefix(l.CommitEvidence, "ce:")
	tx, nonce, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || len(nonce) != 64 {
		return engine.TxID{}, engine.Errorf(engine.KindInvalid, CodeInvalidReceipt, "commit evidence is not ce:<view>.<seqno>:<64 hex>")
	}
	if _, err := hex.DecodeString(nonce); err != nil {
		return engine.TxID{}, engine.Errorf(engine.KindInvalid, CodeInvalidReceipt, "commit evidence is not ce:<view>.<seqno>:<64 hex>")
	}
	return engine.ParseTxID(tx)
}

// PathElem is one step of an inclusion proof, the Merkle tree's own: Left
// means the sibling Hash is the left child.
type PathElem = merkle.PathElem

// ComputeRoot folds the path over the leaf's hash, from the leaf upward.
func ComputeRoot(leaf Leaf, path []PathElem) engine.Digest {
	return merkle.ComputeRoot(leaf.Hash(), path)
}

package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// Digest is a SHA-256 hash.
type Digest = [32]byte

// CommitEvidence is CCF's commit evidence string for a transaction:
// "ce:<view>.<seqno>:<64 hex>" where the hex is the entry's 32-byte nonce.
func CommitEvidence(tx TxID, nonce Digest) string {
	b := make([]byte, 0, 3+20+1+20+1+64)
	b = append(b, "ce:"...)
	b = strconv.AppendUint(b, tx.View, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, tx.Seqno, 10)
	b = append(b, ':')
	b = hex.AppendEncode(b, nonce[:])
	return string(b)
}

// LeafHash is CCF's Merkle leaf:
// SHA-256(write_set_digest ‖ SHA-256(commit_evidence) ‖ claims_digest).
func LeafHash(writeSetDigest Digest, commitEvidence string, claimsDigest Digest) Digest {
	ce := sha256.Sum256([]byte(commitEvidence))
	var buf [96]byte
	copy(buf[0:32], writeSetDigest[:])
	copy(buf[32:64], ce[:])
	copy(buf[64:96], claimsDigest[:])
	return sha256.Sum256(buf[:])
}

// HashChildren is CCF's internal Merkle node: SHA-256(left ‖ right), with no
// RFC 6962 domain-separation prefix.
func HashChildren(left, right []byte) Digest {
	var buf [64]byte
	copy(buf[0:32], left)
	copy(buf[32:64], right)
	return sha256.Sum256(buf[:])
}

package merkle

import (
	"encoding/binary"
	"errors"

	"github.com/gavelhq/gavel/engine"
	"github.com/transparency-dev/merkle/compact"
)

// NodeReader reads stored perfect-subtree nodes, as Tree.Append handed them
// out. found is false when the node was never stored.
type NodeReader interface {
	Node(id compact.NodeID) (hash engine.Digest, found bool, err error)
}

// MemNodes is an in-memory node store, for tests and for the audit tool,
// which rebuilds the tree from the log. Its Put method fits Tree.Append.
// It is not safe for concurrent writes.
type MemNodes map[compact.NodeID]engine.Digest

// Node implements NodeReader.
func (m MemNodes) Node(id compact.NodeID) (engine.Digest, bool, error) {
	h, ok := m[id]
	return h, ok, nil
}

// Put stores a node.
func (m MemNodes) Put(id compact.NodeID, hash engine.Digest) { m[id] = hash }

// readNodes fetches ids in order; a missing node means the store lost part of
// the tree, which replay from the log repairs.
func readNodes(nodes NodeReader, ids []compact.NodeID) ([][]byte, error) {
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok, err := nodes.Node(id)
		if err != nil {
			var typed *engine.Error
			if errors.As(err, &typed) {
				return nil, err
			}
			return nil, engine.Wrap(engine.KindInternal, "MerkleNodeReadFailed", err, "reading node level %d index %d", id.Level, id.Index)
		}
		if !ok {
			return nil, engine.Errorf(engine.KindInternal, "MerkleNodeMissing", "node level %d index %d is not stored", id.Level, id.Index)
		}
		hashes[i] = h[:]
	}
	return hashes, nil
}

// NodeKeySize is the length of a NodeKey.
const NodeKeySize = 9

// NodeKey encodes a node id as a fixed-width key: level (1 byte) then index
// (8 bytes, big-endian). Byte order equals (level, index) order, so each
// level is one contiguous run that only ever grows at its end, which suits
// an LSM store; the caller adds its own table prefix. id must be a node of
// some tree (level at most 63), as every id this package hands out is.
func NodeKey(id compact.NodeID) []byte {
	var k [NodeKeySize]byte
	k[0] = byte(id.Level)
	binary.BigEndian.PutUint64(k[1:], id.Index)
	return k[:]
}

// ParseNodeKey decodes a NodeKey. It refuses keys of the wrong length and
// ids that cannot exist in a tree of at most 2^64 leaves (level above 63,
// or an index whose leaves would pass 2^64).
func ParseNodeKey(key []byte) (compact.NodeID, error) {
	if len(key) != NodeKeySize {
		return compact.NodeID{}, engine.Errorf(engine.KindInvalid, "InvalidNodeKey", "node key has %d bytes, want %d", len(key), NodeKeySize)
	}
	level := uint(key[0])
	index := binary.BigEndian.Uint64(key[1:])
	if level > 63 || (level > 0 && index>>(64-level) != 0) {
		return compact.NodeID{}, engine.Errorf(engine.KindInvalid, "InvalidNodeKey", "no node at level %d index %d", level, index)
	}
	return compact.NewNodeID(level, index), nil
}

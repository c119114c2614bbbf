package state

import (
	"encoding/binary"

	"github.com/gavelhq/gavel/engine"

	"github.com/transparency-dev/merkle/compact"
)

// Key layout. Each space has a one-byte prefix; fixed-width big-endian
// numbers keep the index spaces in seqno order.
const (
	prefixTable     = 't' // t <table> 0x00 <key>      → value
	prefixModel     = 'p' // p <table> 0x00 <key>      → read model value (model.go)
	prefixNode      = 'n' // n <level:1> <index:8>     → 32-byte hash
	prefixEntry     = 'e' // e <seqno:8>               → leafRecord
	prefixSignature = 's' // s <seqno:8>               → signatureRecord
	prefixClaims    = 'c' // c <claims digest:32>      → seqno:8 of the statement's latest registration
	keyMeta         = "m" // m                         → meta
)

func tableKey(table, key string) []byte {
	b := make([]byte, 0, 1+len(table)+1+len(key))
	b = append(b, prefixTable)
	b = append(b, table...)
	b = append(b, 0)
	return append(b, key...)
}

func tablePrefix(table string) []byte {
	b := make([]byte, 0, 1+len(table)+1)
	b = append(b, prefixTable)
	b = append(b, table...)
	return append(b, 0)
}

func seqKey(prefix byte, seqno uint64) []byte {
	var b [9]byte
	b[0] = prefix
	binary.BigEndian.PutUint64(b[1:], seqno)
	return b[:]
}

func nodeKey(id compact.NodeID) []byte {
	var b [10]byte
	b[0] = prefixNode
	b[1] = byte(id.Level)
	binary.BigEndian.PutUint64(b[2:], id.Index)
	return b[:]
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func claimsKey(d engine.Digest) []byte {
	return append([]byte{prefixClaims}, d[:]...)
}

package engine

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"time"
)

// EntryKind says what an entry records. It is also the last token of the
// entry's subject on the ledger stream (gavel.ledger.<kind>), so auditors
// and followers can filter without decoding.
type EntryKind string

const (
	KindGenesis   EntryKind = "genesis"   // creates the service: identity, settings
	KindStatement EntryKind = "statement" // a registered signed statement (SCITT)
	KindSignature EntryKind = "signature" // the service's signature over the Merkle root

	KindGovProposal   EntryKind = "proposal"   // a member's signed proposal
	KindGovBallot     EntryKind = "ballot"     // a member's signed ballot
	KindGovWithdrawal EntryKind = "withdrawal" // a proposer's signed withdrawal
	// A member's signed request for a fresh state digest, and its signed
	// acknowledgement of it (CCF's member activation).
	KindGovStateDigest EntryKind = "state_digest"
	KindGovAck         EntryKind = "ack"

	// A node's signed join request (admitted Pending), and the delete of a
	// retired node whose retirement a signature covers.
	KindNodeJoin   EntryKind = "node_join"
	KindNodeDelete EntryKind = "node_delete"
	// The network map's entries (engine/netmap): a node's signed NodeInfo,
	// its acceptance of a pending parameters update, and the flag day.
	KindNodeInfo EntryKind = "node_info"
	KindNodeAck  EntryKind = "node_ack"
	KindFlagDay  EntryKind = "flag_day"
)

// Tables written by the ledger spine itself.
const (
	TableService    = "gavel.service"    // "certificate" → service cert PEM, "settings" → JSON
	TableSignatures = "gavel.signatures" // "" → COSE_Sign1 over the root of the tree before it
	TableStatements = "gavel.statements" // claims digest (hex) → StatementRecord (CBOR)
)

// Entry is one ledger entry, the unit of the log. It carries the request
// verbatim, the facts the engine fixed for it, and the write set it produced.
// It is encoded as deterministic CBOR with integer keys.
type Entry struct {
	Kind           EntryKind `cbor:"1,keyasint"`
	View           uint64    `cbor:"2,keyasint"`
	Seqno          uint64    `cbor:"3,keyasint"`
	TimeMillis     int64     `cbor:"4,keyasint"`           // engine time, Unix milliseconds
	Nonce          Digest    `cbor:"5,keyasint"`           // commit-evidence nonce
	Input          []byte    `cbor:"6,keyasint,omitempty"` // the signed request, verbatim
	Writes         WriteSet  `cbor:"7,keyasint"`
	WriteSetDigest Digest    `cbor:"8,keyasint"`
	ClaimsDigest   Digest    `cbor:"9,keyasint"`
	// Result is the engine's answer to the request (JSON), kept so that an
	// identical request sent again gets the first answer without a new entry.
	Result []byte `cbor:"10,keyasint,omitempty"`
	// VoidReason says why a void entry (KindVoid) is void. It is never
	// encoded: a void entry exists only in readers' folds.
	VoidReason string `cbor:"-"`
}

// TxID is the entry's transaction id.
func (e *Entry) TxID() TxID { return TxID{View: e.View, Seqno: e.Seqno} }

// Time is the entry's engine time.
func (e *Entry) Time() time.Time { return time.UnixMilli(e.TimeMillis).UTC() }

// CommitEvidence is the entry's CCF commit evidence string.
func (e *Entry) CommitEvidence() string { return CommitEvidence(e.TxID(), e.Nonce) }

// Leaf is the entry's Merkle leaf hash; a void entry's is VoidLeaf.
func (e *Entry) Leaf() Digest {
	if e.Kind == KindVoid {
		return VoidLeaf
	}
	return LeafHash(e.WriteSetDigest, e.CommitEvidence(), e.ClaimsDigest)
}

// Seal fixes the canonical write set and its digest; call it once the write
// set is final and before encoding.
func (e *Entry) Seal() {
	e.Writes = e.Writes.Canonical()
	e.WriteSetDigest = sha256.Sum256(e.Writes.Encode())
}

// Encode returns the entry's deterministic CBOR bytes.
func (e *Entry) Encode() ([]byte, error) { return CBOR.Marshal(e) }

// Subject is the ledger stream subject the entry is published on.
func (e *Entry) Subject() string { return "gavel.ledger." + string(e.Kind) }

// DecodeEntry parses an entry and checks its self-consistency: no unknown
// fields, a known kind, a write set in canonical form that matches its
// digest. It does not check its place in the log.
func DecodeEntry(b []byte) (*Entry, error) {
	var e Entry
	if err := entryDecode.Unmarshal(b, &e); err != nil {
		return nil, Wrap(KindInvalid, "InvalidEntry", err, "entry does not decode")
	}
	if e.Seqno == 0 || e.View == 0 {
		return nil, Errorf(KindInvalid, "InvalidEntry", "entry lacks view or seqno")
	}
	if err := e.Kind.Validate(); err != nil {
		return nil, Wrap(KindInvalid, "InvalidEntry", err, "entry %s", e.TxID())
	}
	canonical := e.Writes.Encode()
	if recorded, err := CBOR.Marshal(e.Writes); err != nil || !bytes.Equal(recorded, canonical) {
		return nil, Errorf(KindInvalid, "InvalidEntry", "entry %s: write set is not in canonical order", e.TxID())
	}
	if got := sha256.Sum256(canonical); got != e.WriteSetDigest {
		return nil, Errorf(KindInvalid, "WriteSetDigestMismatch",
			"entry %s: write set digest %x, recorded %x", e.TxID(), got, e.WriteSetDigest)
	}
	return &e, nil
}

// Value returns the value a write set gives (table, key), if any.
func (ws WriteSet) Value(table, key string) ([]byte, bool) {
	for i := len(ws) - 1; i >= 0; i-- {
		if ws[i].Table == table && ws[i].Key == key {
			if ws[i].Delete {
				return nil, false
			}
			return ws[i].Value, true
		}
	}
	return nil, false
}

// StatementRecord is what a statement entry writes under its claims digest.
type StatementRecord struct {
	Issuer  string `cbor:"1,keyasint"`
	Subject string `cbor:"2,keyasint"`
}

func (k EntryKind) String() string { return string(k) }

// Validate checks that a kind is one gavel writes: a log holding another
// kind was written by other software, and nothing here can fold it.
func (k EntryKind) Validate() error {
	switch k {
	case KindGenesis, KindStatement, KindSignature, KindGovProposal, KindGovBallot, KindGovWithdrawal,
		KindGovStateDigest, KindGovAck, KindNodeJoin, KindNodeDelete,
		KindNodeInfo, KindNodeAck, KindFlagDay:
		return nil
	}
	return fmt.Errorf("unknown entry kind %q", string(k))
}

// StateReader is read access to the tables, as execution sees them.
type StateReader interface {
	Get(table, key string) (value []byte, ok bool, err error)
	// Range calls fn for each key of table in key order until fn returns false.
	Range(table string, fn func(key string, value []byte) bool) error
}

// Facts are what the sequencer fixes for an entry before executing it.
type Facts struct {
	TxID TxID
	Time time.Time
}

// Effect is what executing a command produced.
type Effect struct {
	Writes       WriteSet
	ClaimsDigest Digest
	Result       []byte // the JSON answer to the caller
	// Replayed marks a request the ledger already holds (an identical
	// envelope sent again): Result is the first answer and no entry is
	// written.
	Replayed bool
}

// Command is a request that passed its stateless checks (parsing, size,
// signature) and is ready to execute against state. Execute is pure: it
// reads only its arguments.
type Command interface {
	Kind() EntryKind
	Input() []byte
	Execute(state StateReader, facts Facts) (Effect, error)
}

package natslog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gavelhq/gavel/engine"
)

// Sentinels to test with errors.Is; the returned errors are *engine.Error
// values that wrap them, so callers also get a Kind and a stable Code.
var (
	// ErrWrongLastSequence: another writer appended first. Catch up from the
	// stream, re-execute and retry; the batch was not stored.
	ErrWrongLastSequence = errors.New("natslog: wrong last sequence")
	// ErrBatchTooLarge: more messages than the server takes in one atomic
	// batch; nothing was stored.
	ErrBatchTooLarge = errors.New("natslog: atomic batch too large")
	// ErrBatchIncomplete: the server dropped the batch before the commit
	// (a message was refused, the batch timed out, too many batches in
	// flight); nothing was stored and a retry may succeed.
	ErrBatchIncomplete = errors.New("natslog: atomic batch incomplete")
	// ErrCommitOutcomeUnknown: the commit got no answer (timeout, lost
	// connection). The batch may or may not be stored: read the stream.
	ErrCommitOutcomeUnknown = errors.New("natslog: commit outcome unknown")
	// ErrUnavailable: no stream answered (no responders, JetStream down);
	// nothing was stored.
	ErrUnavailable = errors.New("natslog: ledger unavailable")

	// ErrStorage: the server could not store the batch (its disk or its
	// resources); nothing was stored. It persists until the cause clears
	// (and, for a write error, the stream is reloaded). The errors below
	// say which cause; each is also ErrStorage.
	ErrStorage = errors.New("natslog: storage failure")
	// ErrStorageFull: no space left on the server's store.
	ErrStorageFull = fmt.Errorf("%w: no space left", ErrStorage)
	// ErrTooManyOpenFiles: the server ran out of file descriptors.
	ErrTooManyOpenFiles = fmt.Errorf("%w: too many open files", ErrStorage)
	// ErrInsufficientResources: JetStream's own limits (storage or memory
	// reservation, or the server's resources) refuse the write.
	ErrInsufficientResources = fmt.Errorf("%w: insufficient resources", ErrStorage)
)

// StorageCode is the stable error code of a storage failure: StorageFull,
// TooManyOpenFiles, InsufficientResources or StorageFailed.
func StorageCode(err error) string {
	switch {
	case errors.Is(err, ErrStorageFull):
		return "StorageFull"
	case errors.Is(err, ErrTooManyOpenFiles):
		return "TooManyOpenFiles"
	case errors.Is(err, ErrInsufficientResources):
		return "InsufficientResources"
	default:
		return "StorageFailed"
	}
}

// JetStream error codes (nats-server server/errors.json) that gavel reacts to.
// Others (unsupported header 10177, invalid batch id 10179, invalid commit
// 10200, duplicate message id 10201) are gavel's own bugs: BatchRejected.
const (
	errCodeWrongLastSequence         = 10071 // "wrong last sequence: {seq}"
	errCodeWrongLastSequenceConstant = 10164 // "wrong last sequence", no number
	errCodeAtomicDisabled            = 10174
	errCodeAtomicMissingSeq          = 10175
	errCodeAtomicIncomplete          = 10176
	errCodeAtomicTooLarge            = 10199
	errCodeAtomicTooManyInflight     = 10210
	errCodeInsufficientResources     = 10023 // 503 "insufficient resources"
	errCodeMemoryResourcesExceeded   = 10028 // 500
	errCodeStorageResourcesExceeded  = 10047 // 500 "insufficient storage resources available"
	errCodeStoreFailed               = 10077 // 503 "{err}": the store's own write error
)

// APIError is JetStream's error answer, as found in a PubAck's "error".
type APIError struct {
	Code        int    `json:"code"`
	ErrCode     uint16 `json:"err_code"`
	Description string `json:"description"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("jetstream error %d (%d): %s", e.ErrCode, e.Code, e.Description)
}

// WrongLastSequenceError says what the ledger's last sequence was when a
// write expecting another one was refused. Actual is 0 with Known false
// when neither the server nor a later stream info could tell.
type WrongLastSequenceError struct {
	Expected uint64
	Actual   uint64
	Known    bool
}

func (e *WrongLastSequenceError) Error() string {
	if !e.Known {
		return fmt.Sprintf("expected last sequence %d, actual unknown", e.Expected)
	}
	return fmt.Sprintf("expected last sequence %d, actual %d", e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrWrongLastSequence) true.
func (e *WrongLastSequenceError) Is(target error) bool { return target == ErrWrongLastSequence }

// wrongLastSequence builds the typed conflict error.
func wrongLastSequence(expected, actual uint64, known bool) error {
	cause := &WrongLastSequenceError{Expected: expected, Actual: actual, Known: known}
	return engine.Wrap(engine.KindConflict, "WrongLastSequence", cause, "the ledger moved on")
}

// actualLastSequence reads the number in "wrong last sequence: 42".
func actualLastSequence(description string) (uint64, bool) {
	_, num, ok := strings.Cut(description, "wrong last sequence: ")
	if !ok || num == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// batchAPIError maps an atomic batch error answer to a typed error; for
// ErrWrongLastSequence the actual sequence is the server's, when it said.
func batchAPIError(apiErr *APIError, expected uint64) error {
	switch apiErr.ErrCode {
	case errCodeWrongLastSequence, errCodeWrongLastSequenceConstant:
		actual, known := actualLastSequence(apiErr.Description)
		return wrongLastSequence(expected, actual, known && apiErr.ErrCode == errCodeWrongLastSequence)
	case errCodeAtomicTooLarge:
		return engine.Wrap(engine.KindTooLarge, "BatchTooLarge", errors.Join(ErrBatchTooLarge, apiErr), "atomic batch refused")
	case errCodeAtomicIncomplete, errCodeAtomicMissingSeq, errCodeAtomicTooManyInflight:
		return engine.Wrap(engine.KindUnavailable, "BatchIncomplete", errors.Join(ErrBatchIncomplete, apiErr), "atomic batch dropped by the server")
	case errCodeStoreFailed, errCodeInsufficientResources, errCodeMemoryResourcesExceeded, errCodeStorageResourcesExceeded:
		return storageError(apiErr)
	case errCodeAtomicDisabled:
		return engine.Wrap(engine.KindInternal, "AtomicPublishDisabled", apiErr, "stream %s does not allow atomic publish", LedgerStream)
	default:
		return engine.Wrap(engine.KindInternal, "BatchRejected", apiErr, "atomic batch refused")
	}
}

// storageError classifies a store failure by its cause. The server gives
// the filestore's OS error only as text (10077 "{err}"), so this is the one
// place that reads it; everything after branches on the sentinels.
func storageError(apiErr *APIError) error {
	sentinel := StorageCause(apiErr.Description)
	switch {
	case sentinel != ErrStorage:
	case apiErr.ErrCode == errCodeStorageResourcesExceeded:
		sentinel = ErrStorageFull
	case apiErr.ErrCode == errCodeInsufficientResources, apiErr.ErrCode == errCodeMemoryResourcesExceeded:
		sentinel = ErrInsufficientResources
	}
	return engine.Wrap(engine.KindUnavailable, StorageCode(sentinel), apiErr, "the ledger's store refused the write").Marked(sentinel)
}

// StorageCause is the sentinel for a store failure the server reports only
// as text (a PubAck's description, or the stream's write error in its
// health report): ErrStorageFull, ErrTooManyOpenFiles, or ErrStorage.
func StorageCause(text string) error {
	d := strings.ToLower(text)
	switch {
	case strings.Contains(d, "no space left"), strings.Contains(d, "disk quota"):
		return ErrStorageFull
	case strings.Contains(d, "too many open files"):
		return ErrTooManyOpenFiles
	}
	return ErrStorage
}

func unavailable(err error, format string, args ...any) error {
	return engine.Wrap(engine.KindUnavailable, "LedgerUnavailable", err, format, args...).Marked(ErrUnavailable)
}

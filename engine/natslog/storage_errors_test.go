package natslog

import (
	"errors"
	"testing"

	"github.com/gavelhq/gavel/engine"
)

// How JetStream reports a store that cannot write (nats-server
// errors.json and the filestore's OS errors) and what gavel makes of it.
func TestStorageErrorsAreClassified(t *testing.T) {
	for _, c := range []struct {
		code uint16
		desc string
		want error
		str  string
	}{
		{errCodeStoreFailed, "write /data/nats/jetstream/$G/streams/GAVEL_LEDGER/msgs/1.blk: no space left on device", ErrStorageFull, "StorageFull"},
		{errCodeStoreFailed, "open /data/nats/jetstream/$G/streams/GAVEL_LEDGER/msgs/7.blk: too many open files", ErrTooManyOpenFiles, "TooManyOpenFiles"},
		{errCodeStoreFailed, "write /data/x.blk: disk quota exceeded", ErrStorageFull, "StorageFull"},
		{errCodeStoreFailed, "write /data/x.blk: input/output error", ErrStorage, "StorageFailed"},
		{errCodeStorageResourcesExceeded, "insufficient storage resources available", ErrStorageFull, "StorageFull"},
		{errCodeInsufficientResources, "insufficient resources", ErrInsufficientResources, "InsufficientResources"},
		{errCodeMemoryResourcesExceeded, "insufficient memory resources available", ErrInsufficientResources, "InsufficientResources"},
	} {
		err := batchAPIError(&APIError{Code: 503, ErrCode: c.code, Description: c.desc}, 7)
		e := engine.AsError(err)
		if !errors.Is(err, c.want) || !errors.Is(err, ErrStorage) || e.Code != c.str || e.Kind != engine.KindUnavailable {
			t.Errorf("%d %q: %v (kind %v)", c.code, c.desc, err, e.Kind)
		}
		if errors.Is(err, ErrWrongLastSequence) || errors.Is(err, ErrCommitOutcomeUnknown) {
			t.Errorf("%d %q: also %v", c.code, c.desc, err)
		}
	}
	// Not a storage failure: a foreign writer.
	if err := batchAPIError(&APIError{Code: 400, ErrCode: errCodeWrongLastSequence, Description: "wrong last sequence: 9"}, 7); errors.Is(err, ErrStorage) || !errors.Is(err, ErrWrongLastSequence) {
		t.Errorf("wrong last sequence: %v", err)
	}
	if err := unavailable(errors.New("no responders"), "x"); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrStorage) {
		t.Errorf("unavailable: %v", err)
	}
}

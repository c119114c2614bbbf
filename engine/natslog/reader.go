package natslog

import (
	"context"
	"errors"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
)

// rangePull is how many messages an ordered consumer asks for at once.
const rangePull = 1000

// Reader reads GAVEL_LEDGER with either user (the client user's
// permissions suffice): ordered consumers for ranges, direct gets for
// single entries.
type Reader struct {
	js jetstream.JetStream

	mu     sync.Mutex
	stream jetstream.Stream // cached for Get; fetched on first use
}

// NewReader reads the ledger through js.
func NewReader(js jetstream.JetStream) *Reader { return &Reader{js: js} }

// Entry handler: seq is the stream sequence (the ledger seqno); fn may keep
// data. An error from fn stops the read and is returned as is.
type EntryFunc func(seq uint64, subject string, data []byte) error

// LastSequence is the ledger stream's last sequence (0 when empty).
func (r *Reader) LastSequence(ctx context.Context) (uint64, error) {
	return lastSequence(ctx, r.js)
}

// Range calls fn for every entry from sequence from (inclusive; 0 means 1)
// to the last one when Range began, in order, then returns nil.
func (r *Reader) Range(ctx context.Context, from uint64, fn EntryFunc) error {
	end, err := r.LastSequence(ctx)
	if err != nil {
		return err
	}
	from = max(from, 1)
	if from > end {
		return nil
	}
	return r.consume(ctx, from, end, fn)
}

// Follow calls fn for every entry from sequence from onwards and keeps
// tailing the stream until ctx is done; it returns ctx's error, or fn's.
func (r *Reader) Follow(ctx context.Context, from uint64, fn EntryFunc) error {
	return r.consume(ctx, max(from, 1), 0, fn)
}

// consume runs an ordered consumer from sequence from up to end (0: no end).
func (r *Reader) consume(ctx context.Context, from, end uint64, fn EntryFunc) error {
	cons, err := r.js.OrderedConsumer(ctx, LedgerStream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return readError(ctx, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(rangePull))
	if err != nil {
		return readError(ctx, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return readError(ctx, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return engine.Wrap(engine.KindInternal, "LedgerUnreadable", err, "message without JetStream metadata")
		}
		seq := meta.Sequence.Stream
		if err := fn(seq, msg.Subject(), msg.Data()); err != nil {
			return err
		}
		if end != 0 && seq >= end {
			return nil
		}
	}
}

func readError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return unavailable(err, "cannot read stream %s", LedgerStream)
}

// Get returns the entry at seq, with a direct get. In a cluster a direct
// get may be answered by a replica that has not yet stored a just-acked
// entry: NotFound then means "not there yet, or never".
func (r *Reader) Get(ctx context.Context, seq uint64) (subject string, data []byte, err error) {
	if seq == 0 {
		return "", nil, engine.Errorf(engine.KindInvalid, "InvalidSequence", "ledger sequences start at 1")
	}
	stream, err := r.ledger(ctx)
	if err != nil {
		return "", nil, err
	}
	msg, err := stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", nil, engine.Errorf(engine.KindNotFound, "EntryNotFound", "no ledger entry %d", seq)
	}
	if err != nil {
		return "", nil, readError(ctx, err)
	}
	return msg.Subject, msg.Data, nil
}

func (r *Reader) ledger(ctx context.Context) (jetstream.Stream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream != nil {
		return r.stream, nil
	}
	stream, err := r.js.Stream(ctx, LedgerStream)
	if err != nil {
		return nil, readError(ctx, err)
	}
	r.stream = stream
	return stream, nil
}

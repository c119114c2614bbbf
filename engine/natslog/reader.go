package natslog

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
)

// Follow's ordered consumer: messages per pull, and the idle heartbeat
// whose absence (twice over) makes the client recreate the consumer.
const (
	followPull      = 1000
	followHeartbeat = time.Second
)

// Reader reads GAVEL_LEDGER as the sequencer or an auditor (the auditor's
// permissions suffice): direct gets for ranges and single entries, an
// ordered consumer to follow the tail.
type Reader struct {
	js    jetstream.JetStream
	stall time.Duration // Range gives up after this long without progress

	mu     sync.Mutex
	stream jetstream.Stream // cached for Get; fetched on first use
}

// NewReader reads the ledger through js.
func NewReader(js jetstream.JetStream) *Reader { return &Reader{js: js, stall: directStall} }

// EntryFunc receives one message of the ledger, with its stream sequence
// (the ledger seqno) and its authentication headers, not yet checked. It
// may keep m.Data. An error from it stops the read and is returned as is.
type EntryFunc func(m engine.LedgerMsg) error

// LastSequence is the ledger stream's last sequence (0 when empty).
func (r *Reader) LastSequence(ctx context.Context) (uint64, error) {
	return lastSequence(ctx, r.js)
}

// Range calls fn for every entry from sequence from (inclusive; 0 means 1)
// to the last one when Range began, in order, then returns nil. It reads
// with batched direct gets: no consumer is created, and any current
// replica may answer.
func (r *Reader) Range(ctx context.Context, from uint64, fn EntryFunc) error {
	end, err := r.LastSequence(ctx)
	if err != nil {
		return err
	}
	from = max(from, 1)
	if from > end {
		return nil
	}
	return r.directRange(ctx, from, end, fn)
}

// RangeTo calls fn for every entry from sequence from to end (both
// inclusive; from 0 means 1), in order, with batched direct gets only: it
// asks no stream info, so it reads while the stream elects a leader.
func (r *Reader) RangeTo(ctx context.Context, from, end uint64, fn EntryFunc) error {
	from = max(from, 1)
	if from > end {
		return nil
	}
	return r.directRange(ctx, from, end, fn)
}

// Follow calls fn for every entry from sequence from (0 means 1) onwards
// and keeps tailing the stream until ctx is done; it returns ctx's error,
// or fn's. It runs an ordered consumer, which the server pushes new entries
// through and which the client recreates if it loses track.
func (r *Reader) Follow(ctx context.Context, from uint64, fn EntryFunc) error {
	cons, err := r.js.OrderedConsumer(ctx, LedgerStream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   max(from, 1),
	})
	if err != nil {
		return readError(ctx, err)
	}
	// A short heartbeat bounds the stall when a pull request is lost (as
	// when it overtakes the consumer's interest across pooled routes).
	it, err := cons.Messages(jetstream.PullMaxMessages(followPull), jetstream.PullHeartbeat(followHeartbeat))
	if err != nil {
		return readError(ctx, err)
	}
	defer it.Stop()
	// The consumer's own resets retry inside Next, deaf to ctx: Stop ends them.
	defer context.AfterFunc(ctx, it.Stop)()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return readError(ctx, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return engine.Wrap(engine.KindInternal, "LedgerUnreadable", err, "message without JetStream metadata")
		}
		h := msg.Headers()
		if err := fn(engine.LedgerMsg{Seq: meta.Sequence.Stream, Subject: msg.Subject(), Data: msg.Data(),
			Node: h.Get(engine.HeaderNode), Auth: h.Get(engine.HeaderAuth)}); err != nil {
			return err
		}
	}
}

func readError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return unavailable(err, "cannot read stream %s", LedgerStream)
}

// Get returns the subject and data at seq (see GetMsg).
func (r *Reader) Get(ctx context.Context, seq uint64) (subject string, data []byte, err error) {
	m, err := r.GetMsg(ctx, seq)
	return m.Subject, m.Data, err
}

// GetMsg returns the message at seq, with a direct get. In a cluster a
// direct get may be answered by a replica that has not yet stored a
// just-acked entry: NotFound then means "not there yet, or never".
func (r *Reader) GetMsg(ctx context.Context, seq uint64) (engine.LedgerMsg, error) {
	if seq == 0 {
		return engine.LedgerMsg{}, engine.Errorf(engine.KindInvalid, "InvalidSequence", "ledger sequences start at 1")
	}
	stream, err := r.ledger(ctx)
	if err != nil {
		return engine.LedgerMsg{}, err
	}
	msg, err := stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return engine.LedgerMsg{}, engine.Errorf(engine.KindNotFound, "EntryNotFound", "no ledger entry %d", seq)
	}
	if err != nil {
		return engine.LedgerMsg{}, readError(ctx, err)
	}
	return engine.LedgerMsg{Seq: seq, Subject: msg.Subject, Data: msg.Data,
		Node: msg.Header.Get(engine.HeaderNode), Auth: msg.Header.Get(engine.HeaderAuth)}, nil
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

package natslog

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/gavelhq/gavel/engine"
)

// errCodeAtomicDuplicateMsgID: a message of the batch has a Nats-Msg-Id
// the stream already holds (JSAtomicPublishContainsDuplicateMessageErr).
const errCodeAtomicDuplicateMsgID = 10201

// FeedPublisher publishes feed messages on GAVEL_FEEDS in atomic batches.
// With SyncAlways one publish is one write to disk; a batch of up to
// MaxBatchMessages is one, so a flag day that changes thousands of node
// feeds costs a few writes, not thousands. Messages may carry
// Nats-Msg-Id (the feeds' deduplication); no other Nats- header.
type FeedPublisher struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	mu  sync.Mutex // one batch at a time on the connection
	ids *nuid.NUID
}

// NewFeedPublisher wraps a connection whose user may publish gavel.feed.>.
func NewFeedPublisher(nc *nats.Conn) (*FeedPublisher, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "JetStreamUnavailable", err, "cannot use JetStream")
	}
	return &FeedPublisher{nc: nc, js: js, ids: nuid.New()}, nil
}

// Publish publishes msgs in order, as atomic batches of at most
// MaxBatchMessages. A batch refused because one of its Nats-Msg-Ids is
// already stored (sent again after a lost answer) is published message by
// message instead, where each duplicate is a success that stores nothing.
func (p *FeedPublisher) Publish(ctx context.Context, msgs []*nats.Msg) error {
	for _, m := range msgs {
		if !strings.HasPrefix(m.Subject, strings.TrimSuffix(FeedSubjects, ">")) {
			return engine.Errorf(engine.KindInvalid, "InvalidSubject", "%q is not a feed subject", m.Subject)
		}
		for k := range m.Header {
			if strings.HasPrefix(k, reservedHeaderPrefix) && k != jetstream.MsgIDHeader {
				return engine.Errorf(engine.KindInvalid, "ReservedHeader", "header %q is the server's or the publisher's", k)
			}
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCommitTimeout)
		defer cancel()
	}
	for lo := 0; lo < len(msgs); lo += MaxBatchMessages {
		batch := msgs[lo:min(lo+MaxBatchMessages, len(msgs))]
		err := p.batch(ctx, batch)
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.ErrCode == errCodeAtomicDuplicateMsgID {
			err = p.oneByOne(ctx, batch)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// batch sends msgs as one atomic batch and reads the commit's answer.
func (p *FeedPublisher) batch(ctx context.Context, msgs []*nats.Msg) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := []string{p.ids.Next()}
	dress := func(i int) *nats.Msg {
		h := make(nats.Header, len(msgs[i].Header)+3)
		for k, v := range msgs[i].Header {
			h[k] = v
		}
		h[hdrBatchID] = id
		h[hdrBatchSeq] = seqValue(i + 1)
		return &nats.Msg{Subject: msgs[i].Subject, Data: msgs[i].Data, Header: h}
	}
	last := len(msgs) - 1
	for i := range last {
		if err := p.nc.PublishMsg(dress(i)); err != nil {
			return unavailable(err, "feed batch %s not sent", id[0])
		}
	}
	commit := dress(last)
	commit.Header[hdrBatchCommit] = commitValue
	reply, err := p.nc.RequestMsgWithContext(ctx, commit)
	if err != nil {
		return engine.Wrap(engine.KindUnavailable, "CommitOutcomeUnknown", errors.Join(ErrCommitOutcomeUnknown, err), "no answer to the commit of feed batch %s", id[0])
	}
	ack, err := parseBatchAck(reply.Data)
	if err != nil {
		return engine.Wrap(engine.KindInternal, "BatchAckUnreadable", err, "the commit's answer is not a PubAck")
	}
	if ack.Error != nil {
		return ack.Error
	}
	if ack.Stream != FeedsStream {
		return engine.Errorf(engine.KindInternal, "BatchAckMismatch", "feed batch %s acked by stream %s", id[0], ack.Stream)
	}
	return nil
}

// oneByOne publishes msgs one at a time, waiting for each acknowledgement.
func (p *FeedPublisher) oneByOne(ctx context.Context, msgs []*nats.Msg) error {
	for _, m := range msgs {
		if _, err := p.js.PublishMsg(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

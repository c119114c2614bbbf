package natslog

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/gavelhq/gavel/engine"
)

// MaxBatchMessages is nats-server's limit on messages in one atomic batch
// (streamDefaultMaxAtomicBatchSize; JetStreamLimits.MaxBatchSize unset).
const MaxBatchMessages = 1000

// DefaultCommitTimeout bounds a commit when the context has no deadline.
const DefaultCommitTimeout = 10 * time.Second

// Atomic batch headers (nats-server server/stream.go).
const (
	hdrBatchID         = "Nats-Batch-Id"
	hdrBatchSeq        = "Nats-Batch-Sequence"
	hdrBatchCommit     = "Nats-Batch-Commit"
	hdrExpectedLastSeq = "Nats-Expected-Last-Sequence"
	// Headers with this prefix steer JetStream; entries may not carry them.
	reservedHeaderPrefix = "Nats-"
)

// batchSeqValues[i] is the header value "i", so the hot path does not
// format numbers or allocate value slices.
var batchSeqValues = func() [][]string {
	v := make([][]string, MaxBatchMessages+1)
	for i := range v {
		v[i] = []string{strconv.Itoa(i)}
	}
	return v
}()

var commitValue = []string{"1"}

// Msg is one ledger entry to append. Header is optional and is stored
// with the entry; names starting with "Nats-" are refused (they steer
// JetStream, and the batch headers are the publisher's).
type Msg struct {
	Subject string
	Data    []byte
	Header  nats.Header
}

// Publisher appends to GAVEL_LEDGER. It is safe for concurrent use; its
// batches go out one at a time so their messages stay in order on the
// connection.
type Publisher struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	maxBatch int

	mu      sync.Mutex // guards what follows, reused across batches
	ids     *nuid.NUID
	hdr     nats.Header
	msg     nats.Msg
	idValue []string
}

// NewPublisher wraps a connection whose user may publish gavel.ledger.>.
func NewPublisher(nc *nats.Conn) (*Publisher, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "JetStreamUnavailable", err, "cannot use JetStream")
	}
	return &Publisher{
		nc:       nc,
		js:       js,
		maxBatch: MaxBatchMessages,
		ids:      nuid.New(),
		hdr:      make(nats.Header, 8),
		idValue:  make([]string, 1),
	}, nil
}

// PublishBatch appends msgs as one JetStream atomic batch after
// expectedLastSeq and returns the sequence of the last one, which is
// expectedLastSeq+len(msgs). All or nothing: on any error except
// ErrCommitOutcomeUnknown nothing was stored. ErrWrongLastSequence means
// another writer got there first.
func (p *Publisher) PublishBatch(ctx context.Context, msgs []Msg, expectedLastSeq uint64) (uint64, error) {
	n := len(msgs)
	if n == 0 {
		return 0, engine.Errorf(engine.KindInvalid, "EmptyBatch", "a batch needs at least one message")
	}
	if n > p.maxBatch {
		return 0, engine.Wrap(engine.KindTooLarge, "BatchTooLarge", ErrBatchTooLarge, "%d messages, at most %d", n, p.maxBatch)
	}
	for i := range msgs {
		if _, ok := KindOfSubject(msgs[i].Subject); !ok {
			return 0, engine.Errorf(engine.KindInvalid, "InvalidSubject", "%q is not a ledger subject", msgs[i].Subject)
		}
		for k := range msgs[i].Header {
			if len(k) >= len(reservedHeaderPrefix) && strings.EqualFold(k[:len(reservedHeaderPrefix)], reservedHeaderPrefix) {
				return 0, engine.Errorf(engine.KindInvalid, "ReservedHeader", "header %q is the server's or the publisher's", k)
			}
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCommitTimeout)
		defer cancel()
	}

	p.mu.Lock()
	ack, batchID, err := p.sendBatch(ctx, msgs, expectedLastSeq)
	p.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return p.checkAck(ctx, ack, batchID, n, expectedLastSeq)
}

// sendBatch publishes msgs 1..n-1 without a reply and commits with the
// last as a request; one connection keeps them in order. p.mu is held.
func (p *Publisher) sendBatch(ctx context.Context, msgs []Msg, expectedLastSeq uint64) (ack []byte, batchID string, err error) {
	batchID = p.ids.Next()
	p.idValue[0] = batchID
	last := len(msgs) - 1
	for i := range last {
		if err := p.nc.PublishMsg(p.batchMsg(msgs, i, expectedLastSeq)); err != nil {
			// The server drops the unfinished batch; nothing is stored.
			return nil, batchID, unavailable(err, "atomic batch %s not sent", batchID)
		}
	}
	commit := p.batchMsg(msgs, last, expectedLastSeq)
	commit.Header[hdrBatchCommit] = commitValue
	reply, err := p.nc.RequestMsgWithContext(ctx, commit)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, batchID, unavailable(err, "no stream takes %s", commit.Subject)
	}
	if err != nil {
		return nil, batchID, engine.Wrap(engine.KindUnavailable, "CommitOutcomeUnknown", errors.Join(ErrCommitOutcomeUnknown, err), "no answer to the commit of batch %s", batchID)
	}
	return reply.Data, batchID, nil
}

// batchMsg dresses msgs[i] in the batch headers, reusing p.hdr and p.msg:
// nats.go encodes both before PublishMsg or RequestMsgWithContext returns.
func (p *Publisher) batchMsg(msgs []Msg, i int, expectedLastSeq uint64) *nats.Msg {
	h := p.hdr
	clear(h)
	for k, v := range msgs[i].Header {
		h[k] = v
	}
	h[hdrBatchID] = p.idValue
	h[hdrBatchSeq] = seqValue(i + 1)
	if i == 0 {
		h[hdrExpectedLastSeq] = []string{strconv.FormatUint(expectedLastSeq, 10)}
	}
	p.msg = nats.Msg{Subject: msgs[i].Subject, Data: msgs[i].Data, Header: h}
	return &p.msg
}

func seqValue(i int) []string {
	if i < len(batchSeqValues) {
		return batchSeqValues[i]
	}
	return []string{strconv.Itoa(i)}
}

// checkAck turns the commit's answer into the last sequence or an error.
func (p *Publisher) checkAck(ctx context.Context, data []byte, batchID string, n int, expectedLastSeq uint64) (uint64, error) {
	ack, err := parseBatchAck(data)
	if err != nil {
		return 0, engine.Wrap(engine.KindInternal, "BatchAckUnreadable", err, "the commit's answer is not a PubAck")
	}
	if ack.Error != nil {
		err := batchAPIError(ack.Error, expectedLastSeq)
		var wrong *WrongLastSequenceError
		if errors.As(err, &wrong) && !wrong.Known {
			if actual, lerr := p.LastSequence(ctx); lerr == nil {
				wrong.Actual, wrong.Known = actual, true
			}
		}
		return 0, err
	}
	want := expectedLastSeq + uint64(n)
	if ack.Stream != LedgerStream || ack.Seq != want || (ack.Batch != "" && ack.Batch != batchID) || (ack.Count != 0 && ack.Count != uint64(n)) {
		// Stored, but not as asked: the ledger and the caller disagree.
		return 0, engine.Errorf(engine.KindInternal, "BatchAckMismatch",
			"batch %s of %d after %d: acked %s seq %d batch %q count %d", batchID, n, expectedLastSeq, ack.Stream, ack.Seq, ack.Batch, ack.Count)
	}
	return ack.Seq, nil
}

// batchAck is the commit's answer: a PubAck with the batch id and size, or
// an error.
type batchAck struct {
	Stream string    `json:"stream"`
	Seq    uint64    `json:"seq"`
	Batch  string    `json:"batch"`
	Count  uint64    `json:"count"`
	Error  *APIError `json:"error"`
}

func parseBatchAck(data []byte) (batchAck, error) {
	var ack batchAck
	if len(data) == 0 {
		return ack, errors.New("empty answer")
	}
	if err := json.Unmarshal(data, &ack); err != nil {
		return batchAck{}, err
	}
	if ack.Error == nil && (ack.Stream == "" || ack.Seq == 0) {
		return batchAck{}, errors.New("answer has neither a stream sequence nor an error")
	}
	return ack, nil
}

// PublishOne appends a single entry after expectedLastSeq and returns its
// sequence, expectedLastSeq+1.
func (p *Publisher) PublishOne(ctx context.Context, subject string, data []byte, expectedLastSeq uint64) (uint64, error) {
	return p.PublishOneMsg(ctx, Msg{Subject: subject, Data: data}, expectedLastSeq)
}

// PublishOneMsg is PublishOne with the message's own headers.
func (p *Publisher) PublishOneMsg(ctx context.Context, m Msg, expectedLastSeq uint64) (uint64, error) {
	if _, ok := KindOfSubject(m.Subject); !ok {
		return 0, engine.Errorf(engine.KindInvalid, "InvalidSubject", "%q is not a ledger subject", m.Subject)
	}
	ack, err := p.js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header},
		jetstream.WithExpectStream(LedgerStream), jetstream.WithExpectLastSequence(expectedLastSeq))
	if err != nil {
		return 0, p.publishError(ctx, err, expectedLastSeq)
	}
	if ack.Stream != LedgerStream || ack.Sequence != expectedLastSeq+1 {
		return 0, engine.Errorf(engine.KindInternal, "PublishAckMismatch", "published after %d: acked %s seq %d", expectedLastSeq, ack.Stream, ack.Sequence)
	}
	return ack.Sequence, nil
}

func (p *Publisher) publishError(ctx context.Context, err error, expectedLastSeq uint64) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr):
		mapped := batchAPIError(&APIError{Code: apiErr.Code, ErrCode: uint16(apiErr.ErrorCode), Description: apiErr.Description}, expectedLastSeq)
		var wrong *WrongLastSequenceError
		if errors.As(mapped, &wrong) && !wrong.Known {
			if actual, lerr := p.LastSequence(ctx); lerr == nil {
				wrong.Actual, wrong.Known = actual, true
			}
		}
		return mapped
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return unavailable(err, "no stream takes the entry")
	default:
		return engine.Wrap(engine.KindUnavailable, "CommitOutcomeUnknown", errors.Join(ErrCommitOutcomeUnknown, err), "no answer to the publish")
	}
}

// LastSequence is the ledger stream's last sequence (0 when empty).
func (p *Publisher) LastSequence(ctx context.Context) (uint64, error) {
	return lastSequence(ctx, p.js)
}

func lastSequence(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	for {
		// A stream info request sent while the stream elects a leader is
		// never answered: ask again rather than wait out ctx.
		actx, cancel := context.WithTimeout(ctx, infoAttempt)
		stream, err := js.Stream(actx, LedgerStream)
		cancel()
		if err == nil {
			return stream.CachedInfo().State.LastSeq, nil
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return 0, unavailable(err, "no info on stream %s", LedgerStream)
		}
	}
}

// infoAttempt bounds one stream info request.
const infoAttempt = 500 * time.Millisecond

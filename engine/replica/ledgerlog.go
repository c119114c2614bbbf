package replica

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
)

// LedgerLog adapts the JetStream ledger stream to the sequencer's Log.
type LedgerLog struct {
	*natslog.Reader
	pub  *natslog.Publisher
	msgs []natslog.Msg // reused: AppendBatch runs on the sequencer goroutine only
}

func NewLedgerLog(nc *nats.Conn, js jetstream.JetStream) (*LedgerLog, error) {
	pub, err := natslog.NewPublisher(nc)
	if err != nil {
		return nil, err
	}
	return &LedgerLog{Reader: natslog.NewReader(js), pub: pub}, nil
}

// AppendBatch appends one entry with a plain expected-last-sequence
// publish, which costs a fraction of an atomic batch's fixed staging, and
// more than one as an atomic batch.
func (l *LedgerLog) AppendBatch(ctx context.Context, subjects []string, data [][]byte, expectedLast uint64) (uint64, error) {
	if len(subjects) == 1 {
		return l.pub.PublishOne(ctx, subjects[0], data[0], expectedLast)
	}
	l.msgs = l.msgs[:0]
	for i := range subjects {
		l.msgs = append(l.msgs, natslog.Msg{Subject: subjects[i], Data: data[i]})
	}
	return l.pub.PublishBatch(ctx, l.msgs, expectedLast)
}

// Range adapts the reader's callback type.
func (l *LedgerLog) Range(ctx context.Context, from uint64, fn func(seq uint64, subject string, data []byte) error) error {
	return l.Reader.Range(ctx, from, fn)
}

// Entry reads and decodes one entry of the log.
func (l *LedgerLog) Entry(ctx context.Context, seq uint64) (*engine.Entry, error) {
	_, data, err := l.Reader.Get(ctx, seq)
	if err != nil {
		return nil, engine.Wrap(engine.KindUnavailable, "LogUnavailable", err, "entry %d could not be read from the log", seq)
	}
	return engine.DecodeEntry(data)
}

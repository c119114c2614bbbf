package replica

import (
	"context"
	"runtime"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
)

// LedgerLog adapts the JetStream ledger stream to the sequencer's Log. It
// authenticates every message it appends with the node key.
type LedgerLog struct {
	*natslog.Reader
	pub    *natslog.Publisher
	signer *engine.NodeSigner
}

// NewLedgerLog appends through nc, signing with signer, and reads through js.
func NewLedgerLog(nc *nats.Conn, js jetstream.JetStream, signer *engine.NodeSigner) (*LedgerLog, error) {
	pub, err := natslog.NewPublisher(nc)
	if err != nil {
		return nil, err
	}
	return &LedgerLog{Reader: natslog.NewReader(js), pub: pub, signer: signer}, nil
}

// signChunk is the fewest messages worth a signing goroutine of their own.
const signChunk = 64

// AppendBatch appends one entry with a plain expected-last-sequence
// publish, which costs a fraction of an atomic batch's fixed staging, and
// more than one as an atomic batch. Each message is signed for the
// sequence it will have, expectedLast+1+i; large batches are signed on
// every core.
func (l *LedgerLog) AppendBatch(ctx context.Context, subjects []string, data [][]byte, expectedLast uint64) (uint64, error) {
	msgs := make([]natslog.Msg, len(subjects))
	sign := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			seq := expectedLast + 1 + uint64(i)
			msgs[i] = natslog.Msg{Subject: subjects[i], Data: data[i], Header: nats.Header{
				engine.HeaderNode: {l.signer.ID()},
				engine.HeaderAuth: {l.signer.Sign(seq, subjects[i], data[i])},
			}}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), (len(msgs)+signChunk-1)/signChunk)
	if workers <= 1 {
		sign(0, len(msgs))
	} else {
		var wg sync.WaitGroup
		per := (len(msgs) + workers - 1) / workers
		for lo := 0; lo < len(msgs); lo += per {
			wg.Add(1)
			go func(lo, hi int) {
				defer wg.Done()
				sign(lo, hi)
			}(lo, min(lo+per, len(msgs)))
		}
		wg.Wait()
	}
	if len(msgs) == 1 {
		return l.pub.PublishOneMsg(ctx, msgs[0], expectedLast)
	}
	return l.pub.PublishBatch(ctx, msgs, expectedLast)
}

// Range adapts the reader's callback type.
func (l *LedgerLog) Range(ctx context.Context, from uint64, fn func(engine.LedgerMsg) error) error {
	return l.Reader.Range(ctx, from, fn)
}

// Entry reads and decodes one entry of the log. Only entries the state
// has applied (and so authenticated) are read back this way; the stream
// neither deletes nor rewrites them.
func (l *LedgerLog) Entry(ctx context.Context, seq uint64) (*engine.Entry, error) {
	m, err := l.Reader.GetMsg(ctx, seq)
	if err != nil {
		return nil, engine.Wrap(engine.KindUnavailable, "LogUnavailable", err, "entry %d could not be read from the log", seq)
	}
	return engine.DecodeEntry(m.Data)
}

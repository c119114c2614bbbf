package replica

import (
	"bytes"
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

	mu        sync.Mutex
	presigned map[uint64]presigned // by the sequence the message will have
}

// presigned is a message signed ahead of its append (Presign).
type presigned struct {
	subject string
	data    []byte
	auth    string
}

// maxPresigned bounds the signatures kept for appends that have not come
// (a round executed again is signed again).
const maxPresigned = 4 * natslog.MaxBatchMessages

// Presign signs, ahead of its append, the message that will have sequence
// seq: the sequencer has a round signed while the round before it is in
// flight, so that its append does not wait for the signatures. AppendBatch
// uses a presigned signature only for the same message at the same
// sequence, and signs any other itself.
func (l *LedgerLog) Presign(seq uint64, subject string, data []byte) {
	auth := l.signer.Sign(seq, subject, data)
	l.mu.Lock()
	if l.presigned == nil || len(l.presigned) >= maxPresigned {
		l.presigned = make(map[uint64]presigned)
	}
	l.presigned[seq] = presigned{subject, data, auth}
	l.mu.Unlock()
}

// takePresigned fills auths[i] with the presigned signature of message i
// of a batch after expectedLast, where there is one.
func (l *LedgerLog) takePresigned(subjects []string, data [][]byte, expectedLast uint64, auths []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.presigned) == 0 {
		return
	}
	if len(l.presigned) > natslog.MaxBatchMessages {
		// Signed too late for their append, or for a round executed again.
		for seq := range l.presigned {
			if seq <= expectedLast {
				delete(l.presigned, seq)
			}
		}
	}
	for i := range subjects {
		seq := expectedLast + 1 + uint64(i)
		if p, ok := l.presigned[seq]; ok {
			if p.subject == subjects[i] && bytes.Equal(p.data, data[i]) {
				auths[i] = p.auth
			}
			delete(l.presigned, seq)
		}
	}
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
// sequence it will have, expectedLast+1+i, unless it was presigned; many
// unsigned messages are signed on every core.
func (l *LedgerLog) AppendBatch(ctx context.Context, subjects []string, data [][]byte, expectedLast uint64) (uint64, error) {
	msgs := make([]natslog.Msg, len(subjects))
	auths := make([]string, len(subjects))
	l.takePresigned(subjects, data, expectedLast, auths)
	missing := 0
	for _, a := range auths {
		if a == "" {
			missing++
		}
	}
	sign := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			auth := auths[i]
			if auth == "" {
				auth = l.signer.Sign(expectedLast+1+uint64(i), subjects[i], data[i])
			}
			msgs[i] = natslog.Msg{Subject: subjects[i], Data: data[i], Header: nats.Header{
				engine.HeaderNode: {l.signer.ID()},
				engine.HeaderAuth: {auth},
			}}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), (missing+signChunk-1)/signChunk)
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

package natslog

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine"
)

// Batched direct get tuning.
const (
	directBatch    = 1000
	directMaxBytes = 8 << 20
	// directQuiet is how long a batch may stay silent before it is asked
	// again: a request can be lost while a replica changes state.
	directQuiet = 5 * time.Second
	// directBackoffMax caps the pause while the answering replica lags.
	directBackoffMax = 250 * time.Millisecond
	// directStall is how long Range waits without progress before it gives
	// up (e.g. no replica serves direct gets).
	directStall = 30 * time.Second
)

type directGetRequest struct {
	Seq      uint64 `json:"seq"`
	Batch    int    `json:"batch"`
	MaxBytes int    `json:"max_bytes"`
	UpToSeq  uint64 `json:"up_to_seq"`
}

// directReply classifies one message of a batched direct get answer.
type directReply int

const (
	directEntry      directReply = iota
	directEndOfBatch             // 204 EOB
	directNotFound               // 404: nothing at or after the sequence here
	directNoReplica              // 503: no replica answers direct gets now
	directFailed                 // any other status
	directLost                   // silence or a gap: the batch went astray
)

func classifyDirectReply(m *nats.Msg) directReply {
	if len(m.Data) > 0 {
		return directEntry
	}
	switch m.Header.Get("Status") {
	case "":
		return directEntry
	case "204":
		return directEndOfBatch
	case "404":
		return directNotFound
	case "503":
		return directNoReplica
	default:
		return directFailed
	}
}

// directRange reads entries from..end with batched direct gets, one batch
// in flight at a time. A replica that lags behind end answers short or
// 404; it is asked again after a pause until the entries are there.
func (r *Reader) directRange(ctx context.Context, from, end uint64, fn EntryFunc) error {
	nc := r.js.Conn()
	inbox := nc.NewInbox()
	replies := make(chan *nats.Msg, directBatch+8)
	sub, err := nc.ChanSubscribe(inbox+".*", replies)
	if err != nil {
		return unavailable(err, "cannot subscribe for direct gets")
	}
	defer sub.Unsubscribe()

	subject := "$JS.API.DIRECT.GET." + LedgerStream
	next := from
	backoff := time.Duration(0)
	progressed := time.Now()
	quiet := time.NewTimer(directQuiet)
	defer quiet.Stop()
	for attempt := 0; next <= end; attempt++ {
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
		}
		reply := inbox + "." + strconv.Itoa(attempt)
		req, _ := json.Marshal(directGetRequest{Seq: next, Batch: directBatch, MaxBytes: directMaxBytes, UpToSeq: end})
		if err := nc.PublishRequest(subject, reply, req); err != nil {
			return unavailable(err, "direct get failed")
		}
		before := next
		outcome, err := r.receiveBatch(ctx, replies, reply, quiet, &next, end, fn)
		if err != nil {
			return err
		}
		switch {
		case outcome == directFailed:
			return engine.Errorf(engine.KindInternal, "LedgerUnreadable", "direct get from %d refused", before)
		case next > before && outcome == directEndOfBatch:
			backoff = 0
		default: // lagging or no replica, or a lost batch: pause, ask again
			backoff = min(max(2*backoff, 10*time.Millisecond), directBackoffMax)
		}
		if next > before {
			progressed = time.Now()
		} else if time.Since(progressed) > r.stall {
			return engine.Errorf(engine.KindUnavailable, "LedgerUnavailable", "no replica served entry %d for %s", next, r.stall)
		}
	}
	return nil
}

// receiveBatch hands the entries of one batch to fn and says how it ended;
// answers to earlier, abandoned requests are dropped.
func (r *Reader) receiveBatch(ctx context.Context, replies <-chan *nats.Msg, reply string, quiet *time.Timer, next *uint64, end uint64, fn EntryFunc) (directReply, error) {
	quiet.Reset(directQuiet)
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-quiet.C:
			return directLost, nil
		case m := <-replies:
			if m.Subject != reply {
				continue
			}
			kind := classifyDirectReply(m)
			if kind != directEntry {
				return kind, nil
			}
			seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
			if err != nil {
				return 0, engine.Errorf(engine.KindInternal, "LedgerUnreadable", "direct get answered sequence %q, expected %d", m.Header.Get("Nats-Sequence"), *next)
			}
			if *next > end {
				// The stream grew while it was read (a batch need not stop
				// at up_to_seq): the range ends where it began.
				return directEndOfBatch, nil
			}
			if seq != *next {
				// The ledger has no gaps (DenyDelete): a message of this
				// batch was lost on the way. Ask again from next.
				return directLost, nil
			}
			if err := fn(engine.LedgerMsg{Seq: seq, Subject: m.Header.Get("Nats-Subject"), Data: m.Data,
				Node: m.Header.Get(engine.HeaderNode), Auth: m.Header.Get(engine.HeaderAuth)}); err != nil {
				return 0, err
			}
			*next = seq + 1
			quiet.Reset(directQuiet)
		}
	}
}

package natslog

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
)

// BenchSubject is where the baseline measurements write. They append to
// GAVEL_LEDGER: run them against a throwaway server, never a real ledger.
const BenchSubject = ledgerPrefix + "bench"

// MeasureRawPublish is the per-message baseline: n JetStream publishes of
// payload, each awaiting its (fsynced) ack before the next. It returns
// messages per second.
func MeasureRawPublish(ctx context.Context, js jetstream.JetStream, n int, payload []byte) (float64, error) {
	if n <= 0 {
		return 0, engine.Errorf(engine.KindInvalid, "InvalidBenchmark", "n must be positive")
	}
	start := time.Now()
	for range n {
		if _, err := js.Publish(ctx, BenchSubject, payload); err != nil {
			return 0, unavailable(err, "publish failed")
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// MeasureAtomicBatch is the group-commit baseline: n messages of payload
// appended in atomic batches of batchSize through a Publisher, each batch
// awaiting its commit. It returns messages per second.
func MeasureAtomicBatch(ctx context.Context, nc *nats.Conn, n, batchSize int, payload []byte) (float64, error) {
	if n <= 0 || batchSize <= 0 || batchSize > MaxBatchMessages {
		return 0, engine.Errorf(engine.KindInvalid, "InvalidBenchmark", "need n > 0 and 0 < batchSize <= %d", MaxBatchMessages)
	}
	p, err := NewPublisher(nc)
	if err != nil {
		return 0, err
	}
	last, err := p.LastSequence(ctx)
	if err != nil {
		return 0, err
	}
	batch := make([]Msg, batchSize)
	for i := range batch {
		batch[i] = Msg{Subject: BenchSubject, Data: payload}
	}
	start := time.Now()
	for left := n; left > 0; left -= len(batch) {
		if left < len(batch) {
			batch = batch[:left]
		}
		if last, err = p.PublishBatch(ctx, batch, last); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

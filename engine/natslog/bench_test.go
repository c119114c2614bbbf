package natslog_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/natslog/natstest"
)

var benchPayload = make([]byte, 512)

var benchBatchSizes = []int{1, 10, 100, 500, 1000}

// BenchmarkRawPublishOne is the per-message baseline: one durable
// (SyncAlways) publish at a time, each awaiting its ack.
func BenchmarkRawPublishOne(b *testing.B) {
	ctx := context.Background()
	c := natstest.Start(b, 1)
	c.EnsureStreams()
	js := c.JetStream(c.ConnectReplica(0))
	b.SetBytes(int64(len(benchPayload)))
	for b.Loop() {
		if _, err := js.Publish(ctx, natslog.BenchSubject, benchPayload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRawAtomicBatch is group commit: one iteration is one atomic
// batch through a Publisher, awaiting its commit.
func BenchmarkRawAtomicBatch(b *testing.B) {
	for _, size := range benchBatchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			ctx := context.Background()
			c := natstest.Start(b, 1)
			c.EnsureStreams()
			p := newBenchPublisher(b, c)
			batch := make([]natslog.Msg, size)
			for i := range batch {
				batch[i] = natslog.Msg{Subject: natslog.BenchSubject, Data: benchPayload}
			}
			last := uint64(0)
			b.SetBytes(int64(size * len(benchPayload)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if last, err = p.PublishBatch(ctx, batch, last); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func newBenchPublisher(b *testing.B, c *natstest.Cluster) *natslog.Publisher {
	p, err := natslog.NewPublisher(c.ConnectReplica(0))
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func TestMeasureBaselines(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	nc := c.ConnectReplica(0)
	rate, err := natslog.MeasureRawPublish(ctx, c.JetStream(nc), 20, benchPayload)
	if err != nil || rate <= 0 {
		t.Fatalf("MeasureRawPublish = %v, %v", rate, err)
	}
	// 250 in batches of 100: 100, 100, 50, after the 20 above.
	rate, err = natslog.MeasureAtomicBatch(ctx, nc, 250, 100, benchPayload)
	if err != nil || rate <= 0 {
		t.Fatalf("MeasureAtomicBatch = %v, %v", rate, err)
	}
	if last, err := natslog.NewReader(c.JetStream(nc)).LastSequence(ctx); err != nil || last != 270 {
		t.Fatalf("LastSequence = %d, %v; want 270", last, err)
	}
	if _, err := natslog.MeasureAtomicBatch(ctx, nc, 10, natslog.MaxBatchMessages+1, benchPayload); err == nil {
		t.Fatal("MeasureAtomicBatch took an oversized batch")
	}
}

// BenchmarkRange replays a ledger of 50,000 entries per iteration with
// batched direct gets, as the client user over TCP.
func BenchmarkRange(b *testing.B) {
	const entries = 50_000
	ctx := context.Background()
	c := natstest.Start(b, 1)
	c.EnsureStreams()
	if _, err := natslog.MeasureAtomicBatch(ctx, c.ConnectReplica(0), entries, natslog.MaxBatchMessages, benchPayload); err != nil {
		b.Fatal(err)
	}
	r := natslog.NewReader(c.JetStream(c.ConnectClient(0, natslog.UserAuditor)))
	for b.Loop() {
		n := 0
		if err := r.Range(ctx, 1, func(engine.LedgerMsg) error { n++; return nil }); err != nil || n != entries {
			b.Fatalf("Range: %d entries, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.N*entries)/b.Elapsed().Seconds(), "msgs/s")
}

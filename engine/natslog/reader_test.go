package natslog_test

import (
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/natslog/natstest"
)

// A range ends where the stream ended when it began, even when entries
// land while it reads (a batched direct get does not stop at up_to_seq),
// and it delivers each message's authentication headers.
func TestRangeEndsWhereItBeganWhileTheStreamGrows(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	nc := c.ConnectReplica(0)
	p := newPublisher(t, nc)
	msgs := batchOf("first", 1000)
	msgs = append(msgs, batchOf("second", 500)...)
	for i := range msgs {
		msgs[i].Header = map[string][]string{engine.HeaderNode: {"n"}, engine.HeaderAuth: {"a"}}
	}
	if _, err := p.PublishBatch(ctx, msgs[:1000], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PublishBatch(ctx, msgs[1000:], 1000); err != nil {
		t.Fatal(err)
	}
	n := uint64(0)
	err := natslog.NewReader(c.JetStream(nc)).Range(ctx, 1, func(m engine.LedgerMsg) error {
		if n++; m.Seq != n || m.Node != "n" || m.Auth != "a" || string(m.Data) != string(msgs[n-1].Data) {
			t.Fatalf("message %d: %+v", n, m)
		}
		if m.Seq == 5 { // the second direct-get batch is asked after these land
			if _, err := p.PublishBatch(ctx, batchOf("late", 5), 1500); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	if err != nil || n != 1500 {
		t.Fatalf("Range = %v after %d messages, want 1500", err, n)
	}
}

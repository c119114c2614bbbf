package natslog_test

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/natslog/natstest"
)

// The feed publisher, as the feeds user: more messages than one atomic
// batch holds land in order, the last value per subject kept; the same
// messages again (their Nats-Msg-Ids already stored) are published one by
// one and store nothing; a ledger subject or a steering header is refused.
func TestFeedPublisherBatches(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	nc := c.ConnectService(0, natslog.UserFeeds)
	p, err := natslog.NewFeedPublisher(nc)
	if err != nil {
		t.Fatal(err)
	}
	const nodes = 1200
	msgs := func(round int) []*nats.Msg {
		out := make([]*nats.Msg, 0, 2*nodes)
		for k := range 2 { // each node twice: the later value wins
			for i := range nodes {
				m := nats.NewMsg(fmt.Sprintf("gavel.feed.nodes.n%d", i))
				m.Data = fmt.Appendf(nil, "round %d value %d", round, k)
				m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("nodes/n%d/%d.%d", i, round, k))
				out = append(out, m)
			}
		}
		return out
	}
	first := msgs(1)
	if err := p.Publish(ctx, first); err != nil {
		t.Fatal(err)
	}
	js := c.JetStream(c.ConnectReplica(0))
	stream, err := js.Stream(ctx, natslog.FeedsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil || info.State.LastSeq != 2*nodes || info.State.Msgs != nodes {
		t.Fatalf("after %d messages: %+v %v", 2*nodes, info.State, err)
	}
	for _, i := range []int{0, 999, nodes - 1} {
		last, err := stream.GetLastMsgForSubject(ctx, fmt.Sprintf("gavel.feed.nodes.n%d", i))
		if err != nil || string(last.Data) != "round 1 value 1" {
			t.Fatalf("node %d's feed: %v %v", i, last, err)
		}
	}
	// Sent again after a lost answer: nothing new is stored.
	if err := p.Publish(ctx, first[:10]); err != nil {
		t.Fatalf("a repeated batch: %v", err)
	}
	if info, err := stream.Info(ctx); err != nil || info.State.LastSeq != 2*nodes {
		t.Fatalf("a repeated batch stored messages: %+v %v", info.State, err)
	}
	if err := p.Publish(ctx, []*nats.Msg{{Subject: "gavel.ledger.statement", Data: []byte("x")}}); err == nil {
		t.Fatal("a ledger subject was published as a feed")
	}
	steer := nats.NewMsg("gavel.feed.params")
	steer.Header.Set("Nats-Expected-Last-Sequence", "1")
	if err := p.Publish(ctx, []*nats.Msg{steer}); err == nil {
		t.Fatal("a steering header was published")
	}
}

package natslog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/natslog/natstest"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// batchOf makes n entries whose data names the batch and the position.
func batchOf(tag string, n int) []natslog.Msg {
	msgs := make([]natslog.Msg, n)
	for i := range msgs {
		msgs[i] = natslog.Msg{Subject: natslog.LedgerSubject("statement"), Data: fmt.Appendf(nil, "%s/%d", tag, i)}
	}
	return msgs
}

type entry struct {
	seq     uint64
	subject string
	data    string
}

func readAll(t *testing.T, ctx context.Context, r *natslog.Reader, from uint64) []entry {
	t.Helper()
	var got []entry
	err := r.Range(ctx, from, func(m engine.LedgerMsg) error {
		got = append(got, entry{m.Seq, m.Subject, string(m.Data)})
		return nil
	})
	if err != nil {
		t.Fatalf("Range(%d): %v", from, err)
	}
	return got
}

// checkLedger asserts the ledger holds exactly want, at sequences 1..len(want).
func checkLedger(t *testing.T, ctx context.Context, r *natslog.Reader, want []natslog.Msg) {
	t.Helper()
	got := readAll(t, ctx, r, 1)
	if len(got) != len(want) {
		t.Fatalf("ledger has %d entries, want %d", len(got), len(want))
	}
	for i, e := range got {
		if e.seq != uint64(i+1) || e.subject != want[i].Subject || e.data != string(want[i].Data) {
			t.Fatalf("entry %d = %+v, want seq %d %s %q", i, e, i+1, want[i].Subject, want[i].Data)
		}
	}
}

func newPublisher(t *testing.T, nc *nats.Conn) *natslog.Publisher {
	t.Helper()
	p, err := natslog.NewPublisher(nc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPublishBatchContiguous(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	nc := c.ConnectReplica(0)
	p := newPublisher(t, nc)
	r := natslog.NewReader(c.JetStream(nc))

	var stored []natslog.Msg
	last := uint64(0)
	for _, n := range []int{1, 7, 1000, 3} {
		msgs := batchOf(fmt.Sprint("b", n), n)
		got, err := p.PublishBatch(ctx, msgs, last)
		if err != nil {
			t.Fatalf("batch of %d after %d: %v", n, last, err)
		}
		if got != last+uint64(n) {
			t.Fatalf("batch of %d after %d: last seq %d", n, last, got)
		}
		last = got
		stored = append(stored, msgs...)
	}
	checkLedger(t, ctx, r, stored)
	if seq, err := p.LastSequence(ctx); err != nil || seq != last {
		t.Fatalf("LastSequence = %d, %v; want %d", seq, err, last)
	}

	// A single append and its Get.
	seq, err := p.PublishOne(ctx, natslog.LedgerSubject("signature"), []byte("sig"), last)
	if err != nil || seq != last+1 {
		t.Fatalf("PublishOne = %d, %v; want %d", seq, err, last+1)
	}
	subject, data, err := r.Get(ctx, seq)
	if err != nil || subject != "gavel.ledger.signature" || string(data) != "sig" {
		t.Fatalf("Get(%d) = %q %q %v", seq, subject, data, err)
	}
	if tail := readAll(t, ctx, r, seq-1); len(tail) != 2 || tail[0].seq != seq-1 || tail[1].data != "sig" {
		t.Fatalf("Range from %d = %+v", seq-1, tail)
	}
}

func TestPublishBatchKeepsUserHeaders(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	nc := c.ConnectReplica(0)
	p := newPublisher(t, nc)
	msgs := batchOf("h", 2)
	msgs[1].Header = nats.Header{"Gavel-Kind": []string{"gov"}}
	if _, err := p.PublishBatch(ctx, msgs, 0); err != nil {
		t.Fatal(err)
	}
	stream, err := c.JetStream(nc).Stream(ctx, natslog.LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetMsg(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Gavel-Kind") != "gov" || m.Header.Get("Nats-Batch-Sequence") != "2" {
		t.Fatalf("headers of entry 2: %v", m.Header)
	}
}

func TestPublishBatchWrongLastSequence(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	nc := c.ConnectReplica(0)
	p := newPublisher(t, nc)
	r := natslog.NewReader(c.JetStream(nc))

	first := batchOf("first", 5)
	if _, err := p.PublishBatch(ctx, first, 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		expected uint64
		n        int
	}{
		{"behind", 2, 3},
		{"ahead", 9, 3},
		{"stale empty", 0, 1},
		{"single behind", 4, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.PublishBatch(ctx, batchOf("stale", tc.n), tc.expected)
			assertWrongLastSequence(t, err, tc.expected, 5)
		})
	}
	_, err := p.PublishOne(ctx, natslog.LedgerSubject("statement"), []byte("x"), 3)
	assertWrongLastSequence(t, err, 3, 5)
	checkLedger(t, ctx, r, first)
}

func assertWrongLastSequence(t *testing.T, err error, expected, actual uint64) {
	t.Helper()
	if !errors.Is(err, natslog.ErrWrongLastSequence) {
		t.Fatalf("err = %v, want ErrWrongLastSequence", err)
	}
	var wrong *natslog.WrongLastSequenceError
	if !errors.As(err, &wrong) || !wrong.Known || wrong.Expected != expected || wrong.Actual != actual {
		t.Fatalf("err = %#v, want expected %d actual %d", wrong, expected, actual)
	}
	if e := engine.AsError(err); e.Kind != engine.KindConflict || e.Code != "WrongLastSequence" {
		t.Fatalf("typed error = %v (kind %d)", e, e.Kind)
	}
}

func TestPublishBatchTooLarge(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	nc := c.ConnectReplica(0)
	p := newPublisher(t, nc)
	_, err := p.PublishBatch(ctx, batchOf("big", natslog.MaxBatchMessages+1), 0)
	if !errors.Is(err, natslog.ErrBatchTooLarge) || engine.KindOf(err) != engine.KindTooLarge {
		t.Fatalf("err = %v, want ErrBatchTooLarge", err)
	}
	if seq, err := p.LastSequence(ctx); err != nil || seq != 0 {
		t.Fatalf("LastSequence = %d, %v; want 0", seq, err)
	}
}

func TestPublishBatchRejectsBadInput(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	p := newPublisher(t, c.ConnectReplica(0))
	for name, msgs := range map[string][]natslog.Msg{
		"empty":        nil,
		"feed subject": {{Subject: "gavel.feed.params", Data: []byte("x")}},
		"bad kind":     {{Subject: "gavel.ledger.Gov", Data: []byte("x")}},
		"nats header": {
			{Subject: "gavel.ledger.gov", Data: []byte("x")},
			{Subject: "gavel.ledger.gov", Data: []byte("y"), Header: nats.Header{"nats-expected-last-sequence": {"0"}}},
		},
	} {
		if _, err := p.PublishBatch(ctx, msgs, 0); engine.KindOf(err) != engine.KindInvalid {
			t.Errorf("%s: err = %v, want KindInvalid", name, err)
		}
	}
	if last, err := p.LastSequence(ctx); err != nil || last != 0 {
		t.Fatalf("LastSequence = %d, %v; want 0", last, err)
	}
}

func TestConcurrentPublishersOneWins(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	const racers = 4
	for round := range 5 {
		expected, err := newPublisher(t, c.ConnectReplica(0)).LastSequence(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pubs := make([]*natslog.Publisher, racers)
		for i := range pubs {
			pubs[i] = newPublisher(t, c.ConnectReplica(0))
		}
		errs := make([]error, racers)
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range racers {
			done.Go(func() {
				start.Wait()
				_, errs[i] = pubs[i].PublishBatch(ctx, batchOf(fmt.Sprintf("r%d-p%d", round, i), 50), expected)
			})
		}
		start.Done()
		done.Wait()
		winners := 0
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
			case errors.Is(err, natslog.ErrWrongLastSequence):
			default:
				t.Fatalf("round %d racer %d: %v", round, i, err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d winners, want 1 (%v)", round, winners, errs)
		}
		got, err := pubs[0].LastSequence(ctx)
		if err != nil || got != expected+50 {
			t.Fatalf("round %d: last seq %d, %v; want %d", round, got, err, expected+50)
		}
	}
	// Each round's 50 entries come from one publisher only.
	r := natslog.NewReader(c.JetStream(c.ConnectReplica(0)))
	all := readAll(t, ctx, r, 1)
	for i := 0; i < len(all); i += 50 {
		tag, _, _ := bytes.Cut([]byte(all[i].data), []byte("/"))
		for j, e := range all[i : i+50] {
			if want := fmt.Sprintf("%s/%d", tag, j); e.data != want {
				t.Fatalf("entry %d = %q, want %q: batches interleaved", e.seq, e.data, want)
			}
		}
	}
}

func TestRestartKeepsAckedEntries(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	p := newPublisher(t, c.ConnectReplica(0))
	var stored []natslog.Msg
	last := uint64(0)
	for i := range 3 {
		msgs := batchOf(fmt.Sprint("before", i), 100)
		var err error
		if last, err = p.PublishBatch(ctx, msgs, last); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, msgs...)
	}
	c.Restart(0)
	c.EnsureStreams()
	nc := c.ConnectReplica(0)
	checkLedger(t, ctx, natslog.NewReader(c.JetStream(nc)), stored)
	// The restarted ledger goes on from where it was.
	more := batchOf("after", 10)
	if got, err := newPublisher(t, nc).PublishBatch(ctx, more, last); err != nil || got != last+10 {
		t.Fatalf("batch after restart: %d, %v", got, err)
	}
}

func TestFollowTailsNewEntries(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	nc := c.ConnectReplica(0)
	p := newPublisher(t, nc)
	if _, err := p.PublishBatch(ctx, batchOf("old", 3), 0); err != nil {
		t.Fatal(err)
	}
	followCtx, stop := context.WithCancel(ctx)
	seen := make(chan uint64, 100)
	done := make(chan error, 1)
	go func() {
		done <- natslog.NewReader(c.JetStream(c.ConnectClient(0, natslog.UserAuditor))).Follow(followCtx, 2, func(m engine.LedgerMsg) error {
			seen <- m.Seq
			return nil
		})
	}()
	for want := uint64(2); want <= 8; want++ {
		if want == 4 {
			if _, err := p.PublishBatch(ctx, batchOf("new", 5), 3); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case got := <-seen:
			if got != want {
				t.Fatalf("Follow gave %d, want %d", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("Follow never gave %d", want)
		}
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow returned %v, want context.Canceled", err)
	}
}

func TestRangeStopsOnCallbackError(t *testing.T) {
	ctx := testContext(t)
	c := natstest.Start(t, 1)
	c.EnsureStreams()
	nc := c.ConnectReplica(0)
	if _, err := newPublisher(t, nc).PublishBatch(ctx, batchOf("x", 10), 0); err != nil {
		t.Fatal(err)
	}
	r := natslog.NewReader(c.JetStream(nc))
	stopErr := errors.New("stop here")
	calls := 0
	err := r.Range(ctx, 1, func(m engine.LedgerMsg) error {
		calls++
		if m.Seq == 4 {
			return stopErr
		}
		return nil
	})
	if err != stopErr || calls != 4 {
		t.Fatalf("Range = %v after %d calls, want stopErr after 4", err, calls)
	}
	if got := readAll(t, ctx, r, 11); len(got) != 0 {
		t.Fatalf("Range past the end = %+v", got)
	}
	if _, _, err := r.Get(ctx, 11); engine.KindOf(err) != engine.KindNotFound {
		t.Fatalf("Get past the end: %v, want KindNotFound", err)
	}
}

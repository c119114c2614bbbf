package sequencer_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
)

// gateLog holds the first append after it is armed until release closes.
type gateLog struct {
	*replica.LedgerLog
	armed   atomic.Bool
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (l *gateLog) AppendBatch(ctx context.Context, subjects []string, data [][]byte, expectedLast uint64) (uint64, error) {
	if l.armed.Load() {
		first := false
		l.once.Do(func() { first = true })
		if first {
			close(l.entered)
			<-l.release
		}
	}
	return l.LedgerLog.AppendBatch(ctx, subjects, data, expectedLast)
}

// fillHarness runs a sequencer whose Incoming is incoming, and records
// how many requests each landed round held.
type fillHarness struct {
	*harness
	gate   *gateLog
	asked  chan struct{} // closed when the sequencer first asks Incoming
	once   sync.Once
	mu     sync.Mutex
	rounds []int // requests (entries less signatures) of each landed round
}

func startFill(t *testing.T, fillTo int, fillWait time.Duration, incoming *atomic.Int64) *fillHarness {
	cfg := sequencer.DefaultConfig()
	cfg.FillTo, cfg.FillWait = fillTo, fillWait
	f := &fillHarness{gate: &gateLog{entered: make(chan struct{}), release: make(chan struct{})}, asked: make(chan struct{})}
	cfg.Incoming = func() int {
		if f.gate.armed.Load() {
			f.once.Do(func() { close(f.asked) })
		}
		return int(incoming.Load())
	}
	cfg.OnRound = func(r sequencer.RoundReport) {
		f.mu.Lock()
		f.rounds = append(f.rounds, r.Entries-r.Signatures)
		f.mu.Unlock()
	}
	f.harness = startWith(t, cfg, 1, func(l *replica.LedgerLog) sequencer.Log { f.gate.LedgerLog = l; return f.gate })
	f.gate.armed.Store(true) // genesis has landed
	return f
}

// submit registers p, failing the test if it is not answered within a
// generous backstop (a round held forever would otherwise hang the test).
func (f *fillHarness) submit(t *testing.T, wg *sync.WaitGroup, p engine.Command) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := f.seq.Submit(ctx, p); err != nil {
			t.Error(err)
		}
	}()
}

// openOnFlight puts request "b" into the round open on top of the flight
// of request "a", then lets that flight land.
func (f *fillHarness) openOnFlight(t *testing.T, wg *sync.WaitGroup) {
	f.submit(t, wg, put{"a", "v"})
	<-f.gate.entered // a's round is in flight
	var once sync.Once
	started, release := make(chan struct{}), make(chan struct{})
	f.submit(t, wg, gatedPut{put{"b", "v"}, &once, started, release})
	<-started // b is executing into the open round
	close(f.gate.release)
	close(release)
}

func (f *fillHarness) lastRound() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rounds[len(f.rounds)-1]
}

// Under load (a backlog of requests being verified) the round open when
// the flight lands waits until it holds FillTo requests: one batch
// instead of several.
func TestRoundFillsWhileRequestsAreIncoming(t *testing.T) {
	var incoming atomic.Int64
	incoming.Store(10)
	f := startFill(t, 4, time.Hour, &incoming)
	var wg sync.WaitGroup
	f.openOnFlight(t, &wg)
	f.waitAsked(t)
	for i := range 3 {
		f.submit(t, &wg, put{fmt.Sprintf("c%d", i), "v"})
	}
	wg.Wait()
	if n := f.lastRound(); n != 4 {
		t.Fatalf("rounds %v: the last held %d requests, want b and the three after it", f.rounds, n)
	}
}

// A backlog smaller than the round is a light load: the round waits for
// no more than it.
func TestRoundWaitsOnlyForABacklogItsSize(t *testing.T) {
	var incoming atomic.Int64
	incoming.Store(1)
	f := startFill(t, 4, time.Hour, &incoming)
	var wg sync.WaitGroup
	f.openOnFlight(t, &wg)
	f.waitAsked(t)
	f.submit(t, &wg, put{"c", "v"}) // now the round (2) outgrows the backlog (1)
	wg.Wait()
	if n := f.lastRound(); n != 2 {
		t.Fatalf("rounds %v: the last held %d requests, want b and c", f.rounds, n)
	}
}

// waitAsked waits until the flight's ack is taken and the sequencer asks
// what is incoming: without a hold, b's round is sent from here on, alone.
func (f *fillHarness) waitAsked(t *testing.T) {
	select {
	case <-f.asked:
	case <-time.After(30 * time.Second):
		t.Fatal("the sequencer never asked what is incoming")
	}
}

// With nothing incoming the open round is sent as soon as the flight
// lands, whatever FillTo and FillWait say.
func TestRoundIsNotHeldWithNothingIncoming(t *testing.T) {
	var incoming atomic.Int64
	f := startFill(t, 100, time.Hour, &incoming)
	var wg sync.WaitGroup
	f.openOnFlight(t, &wg)
	wg.Wait()
	if n := f.lastRound(); n != 1 {
		t.Fatalf("rounds %v: b's round held %d requests, want 1", f.rounds, n)
	}
}

// A round held for requests that do not come is sent after FillWait.
func TestRoundIsHeldAtMostFillWait(t *testing.T) {
	var incoming atomic.Int64
	incoming.Store(1) // and never submitted
	f := startFill(t, 100, time.Millisecond, &incoming)
	var wg sync.WaitGroup
	f.openOnFlight(t, &wg)
	wg.Wait()
	if n := f.lastRound(); n != 1 {
		t.Fatalf("rounds %v: b's round held %d requests, want 1", f.rounds, n)
	}
}

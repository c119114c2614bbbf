package constitution

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/gavelhq/gavel/engine"
)

// watchdogTick is how often running calls are checked against their
// deadline and heap budget.
const watchdogTick = time.Millisecond

// watchdog interrupts calls that run past their deadline or grow the heap
// beyond their budget. One goroutine serves all calls; it sleeps while no
// call has run for a while.
type watchdog struct {
	mu       sync.Mutex
	calls    map[*sandbox]watched
	sleeping bool
	started  bool
	wake     chan struct{}
	sample   heapSample
}

type watched struct {
	start  time.Time
	limits Limits
	base   heapSample
}

type heapSample struct {
	at      time.Time
	objects uint64 // bytes in live and not yet swept heap objects: moves with every allocation
	live    uint64 // bytes marked live by the last GC
}

var watch = &watchdog{calls: map[*sandbox]watched{}, wake: make(chan struct{}, 1)}

func readHeap() heapSample {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return heapSample{at: time.Now(), objects: s[0].Value.Uint64(), live: s[1].Value.Uint64()}
}

func (w *watchdog) add(sb *sandbox, start time.Time, limits Limits) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.started || w.sleeping {
		// The last sample may be long stale: take a baseline now.
		w.sample = readHeap()
	}
	// Otherwise the watchdog's last sample (at most a tick old) is the
	// baseline: a slightly early baseline only makes a call look heavier,
	// and a suspect is confirmed by a GC before it is stopped.
	w.calls[sb] = watched{start: start, limits: limits, base: w.sample}
	if !w.started {
		w.started = true
		go w.loop()
	}
	if w.sleeping {
		w.sleeping = false
		w.wake <- struct{}{}
	}
}

// remove ends the watch; after it returns the sandbox is never interrupted
// on behalf of that call.
func (w *watchdog) remove(sb *sandbox) {
	w.mu.Lock()
	delete(w.calls, sb)
	w.mu.Unlock()
}

func (w *watchdog) loop() {
	idle := 0
	for {
		w.mu.Lock()
		if len(w.calls) == 0 {
			idle++
			if idle > 100 {
				w.sleeping = true
				w.mu.Unlock()
				<-w.wake
				idle = 0
				continue
			}
		} else {
			idle = 0
		}
		w.mu.Unlock()
		time.Sleep(watchdogTick)
		w.check()
	}
}

func (w *watchdog) check() {
	sample := readHeap()
	var suspects []*sandbox
	w.mu.Lock()
	w.sample = sample
	for sb, c := range w.calls {
		switch {
		case sb.scriptTime(c.start, sample.at) > c.limits.Timeout:
			w.interrupt(sb, errTimeout(c.limits))
		case sample.objects > c.base.objects+c.limits.MaxHeapGrowth:
			suspects = append(suspects, sb)
		}
	}
	w.mu.Unlock()
	if len(suspects) == 0 {
		return
	}
	// The heap grew past someone's budget, but maybe only with garbage:
	// collect and look at what is live.
	runtime.GC()
	sample = readHeap()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sample = sample
	for _, sb := range suspects {
		c, ok := w.calls[sb]
		if !ok {
			continue
		}
		if sample.live > c.base.live+c.limits.MaxHeapGrowth {
			w.interrupt(sb, errMemory(c.limits))
		} else {
			c.base.objects = sample.objects
			w.calls[sb] = c
		}
	}
}

// interrupt stops a call: goja checks between instructions, host functions
// check sb.abort. Called with w.mu held.
func (w *watchdog) interrupt(sb *sandbox, err *engine.Error) {
	if sb.abort.Load() != nil {
		return
	}
	sb.abort.Store(err)
	sb.rt.Interrupt(err)
}

package constitution

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"
)

// Instances prepared ahead. Every call gets a fresh module instance, and
// instantiating (running the bundle's top level: every function and
// constant it defines) is a large part of a short call's cost. So after a
// call, a background goroutine instantiates the same module again, in an
// idle sandbox, for the next call: each instance still serves exactly one
// call, and the instantiation leaves the caller's path (the sequencer's).
//
// A prepared instance is the very one the call would have made itself,
// because preparing may only run the module's own code in the frozen
// realm, under the same budget:
//   - top-level code that reaches anything a call supplies (gavel.*,
//     console.*, the entry's time, Math.random) stops the preparation with
//     a panic no script can catch, and the module is never prepared again;
//   - so do a throw or a budget failure; a tripped safety net drops the
//     sandbox. Either way the call instantiates inline, as before;
//   - the fuel the top-level code used is charged when the call starts,
//     and an instance serves only a call with the same budget (every
//     deterministic limit equal);
//   - the driver runs the top level and the entry point from the same call
//     sites either way, so even a captured stack trace is the same.

// budget is the deterministic part of Limits: what an instantiation may
// depend on.
type budget struct {
	fuel                          int64
	stack, array, str, depth, log int
}

func budgetOf(l Limits) budget {
	return budget{l.MaxFuel, l.MaxCallStackSize, l.MaxArrayLength, l.MaxStringLength, l.MaxDepth, l.MaxLogBytes}
}

// instance is a module instantiated ahead of its call.
type instance struct {
	mod     *module
	budget  budget
	exports goja.Value
	fuel    int64 // used by the top-level code
}

// maxReady bounds the instances one sandbox keeps ready (readyAhead).
const maxReady = 32

// takeReady removes and returns a ready instance of mod under b, if any
// may be used.
func (sb *sandbox) takeReady(mod *module, b budget) *instance {
	if mode() == PrepareNever {
		return nil
	}
	for i, in := range sb.ready {
		if in.mod == mod && in.budget == b {
			sb.ready = append(sb.ready[:i], sb.ready[i+1:]...)
			return in
		}
	}
	return nil
}

func (sb *sandbox) hasReady(mod *module, b budget) bool { return sb.countReady(mod, b) > 0 }

func (sb *sandbox) countReady(mod *module, b budget) int {
	n := 0
	for _, in := range sb.ready {
		if in.mod == mod && in.budget == b {
			n++
		}
	}
	return n
}

// hostCall marks an entry into what a call supplies; while preparing, it
// stops the preparation (a script cannot catch that).
func (sb *sandbox) hostCall() {
	if c := sb.cur; c != nil && c.preparing {
		panic(errReachedHost)
	}
}

// preparedCalls counts calls served by a prepared instance.
var preparedCalls atomic.Int64

// PreparedCalls is how many calls used an instance prepared ahead, for
// tests and benchmarks.
func PreparedCalls() int64 { return preparedCalls.Load() }

type preparePanic struct{}

var errReachedHost = preparePanic{}

type prepareRequest struct {
	mod    *module
	limits Limits
	done   chan struct{} // a marker: closed once every earlier request is done
}

// PrepareMode says whether and how instances are prepared ahead.
type PrepareMode int32

// Prepare modes. PrepareAhead is the default; the others are for tests
// and benchmarks that compare the paths (their outcomes must not differ).
const (
	PrepareAhead  PrepareMode = iota // on a background goroutine
	PrepareNever                     // every call instantiates inline
	PrepareInline                    // right after each call, on the caller's goroutine
	prepareByHand                    // none requested; tests and benchmarks call prepareOne
)

var prepareMode atomic.Int32

// SetPrepareMode sets how instances are prepared ahead, for every call
// that starts afterwards.
func SetPrepareMode(m PrepareMode) { prepareMode.Store(int32(m)) }

func mode() PrepareMode { return PrepareMode(prepareMode.Load()) }

// preparer instantiates modules ahead, on one goroutine started on first
// use; requests beyond its backlog are dropped (the call then instantiates
// inline).
var preparer struct {
	once sync.Once
	reqs chan prepareRequest
}

// wantReady asks for an instance of mod under limits to be prepared.
func wantReady(mod *module, limits Limits) {
	if mod.unpreparable.Load() {
		return
	}
	switch mode() {
	case PrepareNever, prepareByHand:
		return
	case PrepareInline:
		prepareOne(prepareRequest{mod: mod, limits: limits})
		return
	}
	startPreparer()
	select {
	case preparer.reqs <- prepareRequest{mod: mod, limits: limits}:
	default:
	}
}

func startPreparer() {
	preparer.once.Do(func() {
		preparer.reqs = make(chan prepareRequest, 256)
		go prepareLoop()
	})
}

func prepareLoop() {
	for req := range preparer.reqs {
		if req.done != nil {
			close(req.done)
			continue
		}
		prepareOne(req)
	}
}

// drainPreparer returns once the background preparer has done every
// request made before (tests).
func drainPreparer() {
	startPreparer()
	done := make(chan struct{})
	preparer.reqs <- prepareRequest{done: done}
	<-done
}

func prepareOne(req prepareRequest) {
	sb, skip := takeIdleFor(req.mod, budgetOf(req.limits))
	if skip {
		return
	}
	if sb == nil {
		var err error
		if sb, err = buildSandbox(); err != nil {
			return
		}
	}
	if sb.prepare(req.mod, req.limits) {
		putSandbox(sb)
	} else {
		dropSandbox()
	}
}

// readyAhead is how many instances of a module are kept ready: the
// sequencer executes a round of requests back to back, faster than the
// preparer can follow, then waits for the log's acknowledgement, while the
// preparer refills a round's worth. An instance is a few kilobytes.
const readyAhead = 24

// takeIdleFor takes an idle sandbox to prepare mod in: the least recently
// used, as the most recent is the caller's next, and only if another stays
// idle. Else sb is nil: the preparer may build its own unless skip, which
// also says that idle sandboxes hold enough such instances already.
func takeIdleFor(mod *module, b budget) (sb *sandbox, skip bool) {
	pool.Lock()
	defer pool.Unlock()
	n := 0
	for _, sb := range pool.idle {
		n += sb.countReady(mod, b)
	}
	if n >= readyAhead {
		return nil, true
	}
	if len(pool.idle) < 2 {
		return nil, pool.live >= maxIdle
	}
	sb = pool.idle[0]
	pool.idle = pool.idle[1:]
	return sb, false
}

// prepare instantiates mod under limits and keeps the instance ready. It
// reports whether the sandbox may be reused.
func (sb *sandbox) prepare(mod *module, limits Limits) (reusable bool) {
	c := &call{env: Env{Time: time.Unix(0, 0)}, limits: limits, preparing: true, random: randomSeed}
	sb.cur = c
	sb.exports = nil
	sb.joinStack = sb.joinStack[:0]
	sb.rt.SetMaxCallStackSize(limits.MaxCallStackSize)
	sb.hostNanos.Store(0)
	sb.hostSince.Store(0)
	watch.add(sb, time.Now(), limits)
	var exports goja.Value
	ok := false
	defer func() {
		// A panic out of goja (the host reached, the budget, a safety net)
		// leaves the runtime mid-call: the sandbox is dropped.
		r := recover()
		watch.remove(sb)
		sb.cur = nil
		sb.exports = nil
		tripped := sb.abort.Load() != nil
		reusable = r == nil && !tripped
		switch {
		case ok && r == nil && !tripped:
			if len(sb.ready) >= maxReady {
				sb.ready = sb.ready[1:]
			}
			sb.ready = append(sb.ready, &instance{mod: mod, budget: budgetOf(limits), exports: exports, fuel: c.used})
		case !tripped:
			// Not a machine-dependent stop: this module's top level
			// reaches the host, throws or overruns; it is not prepared
			// again, and its calls instantiate inline as before.
			mod.unpreparable.Store(true)
		}
	}()
	factory, err := sb.factory(mod)
	if err != nil {
		return
	}
	v, err := sb.instantiate(factory)
	if _, isObject := v.(*goja.Object); err != nil || !isObject {
		return
	}
	exports, ok = v, true
	return
}

package constitution

import (
	_ "embed"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"
	"github.com/gavelhq/gavel/engine"
)

//go:embed harden.js
var hardenSource string

var hardenProgram = goja.MustCompile("gavel:harden.js", hardenSource, false)

// driverProgram yields, per sandbox, the one function each call goes
// through: instantiate the bundle, then call the entry point. One top-level
// call instead of several saves goja's per-call setup. The same function
// also only instantiates (entry null: prepare.go) or only calls an instance
// prepared before (factory null; take hands it out), so the module's code
// runs at the same call sites, with the same stack, in every case.
var driverProgram = goja.MustCompile("gavel:driver.js", `(function (exportHook, take) {
	"use strict";
	return function drive(factory, entry, a, b, c, d) {
		__gavel_begin();
		if (factory !== null) factory(exportHook);
		const exports = take();
		if (entry === null) return exports;
		if (exports === undefined) throw new TypeError("the module exported nothing");
		const f = exports[entry];
		if (typeof f !== "function") throw new TypeError(entry + " is not an exported function");
		return f(a, b, c, d);
	};
})`, false)

// maxFactories bounds each sandbox's cache of bundle factories (functions
// no script can reach, which hold no state: every call instantiates anew).
const maxFactories = 512

type nativeFunc = func(goja.FunctionCall) goja.Value

// sandbox is one sealed goja runtime. It runs one call at a time; between
// calls it holds no state a script can observe or change (the realm is
// frozen and every call instantiates its module afresh), so any sandbox can
// serve any call.
type sandbox struct {
	rt    *goja.Runtime
	cur   *call                        // the running call; nil between calls
	abort atomic.Pointer[engine.Error] // set by the watchdog: stop at the next host check

	// Time in host work (state reads, compiling) does not count against the
	// call's budget: storage latency must not decide a script's fate.
	hostNanos atomic.Int64 // finished host work in this call
	hostSince atomic.Int64 // start (UnixNano) of host work in progress, or 0

	exportHook goja.Value    // handed to every bundle factory
	exports    *goja.Object  // what the last instantiated bundle exported
	driver     goja.Callable // runs a call as one top-level JS call
	factories  map[*module]goja.Value
	ready      []*instance // instances prepared ahead (prepare.go), each for one call

	stringifyJSON nativeFunc // the original JSON.stringify
	rangeError    *goja.Object
	joinStack     []*goja.Object // arrays being joined, for cycles and depth
}

// call is the state of one call, visible to host functions.
type call struct {
	env     Env
	limits  Limits
	apply   bool // gavel.kv.set and delete allowed
	overlay *overlay
	random  uint64
	logged  int
	used    int64 // fuel charged (fuel.go)
	// preparing: instantiating ahead of the call (prepare.go), with no
	// call to supply state, time or output.
	preparing bool
}

func newSandbox() (sb *sandbox, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sandbox setup panicked: %v", r)
		}
	}()
	rt := goja.New()
	sb = &sandbox{rt: rt}
	rt.SetRandSource(sb.random)
	rt.SetTimeSource(sb.now)
	json := rt.Get("JSON").ToObject(rt)
	sb.stringifyJSON = json.Get("stringify").Export().(nativeFunc)
	sb.rangeError = rt.Get("RangeError").ToObject(rt)
	sb.exportHook = rt.ToValue(func(c goja.FunctionCall) goja.Value {
		sb.exports = c.Argument(0).ToObject(rt)
		return goja.Undefined()
	})
	if err := rt.Set("__gavel_host", sb.newMeter()); err != nil {
		return nil, err
	}
	if _, err := rt.RunString(meterSource); err != nil {
		return nil, err
	}
	if err := rt.GlobalObject().Delete("__gavel_host"); err != nil {
		return nil, err
	}
	takeExports := rt.ToValue(func(goja.FunctionCall) goja.Value {
		if sb.exports == nil {
			return goja.Undefined()
		}
		return sb.exports
	})
	driver, err := rt.RunProgram(driverProgram)
	if err != nil {
		return nil, err
	}
	bind, _ := goja.AssertFunction(driver)
	bound, err := bind(goja.Undefined(), sb.exportHook, takeExports)
	if err != nil {
		return nil, err
	}
	sb.driver, _ = goja.AssertFunction(bound)
	sb.factories = map[*module]goja.Value{}
	if err := sb.installGuards(); err != nil {
		return nil, err
	}
	if err := sb.installHostAPI(); err != nil {
		return nil, err
	}
	harden, err := rt.RunProgram(hardenProgram)
	if err != nil {
		return nil, err
	}
	fn, _ := goja.AssertFunction(harden)
	if _, err := fn(goja.Undefined(), sb.hostChecks()); err != nil {
		return nil, err
	}
	return sb, nil
}

// random is Math.random: splitmix64 restarted with the same seed at every
// call, so each call sees the same sequence.
func (sb *sandbox) random() float64 {
	c := sb.cur
	if c == nil {
		return 0
	}
	sb.hostCall()
	c.random += 0x9e3779b97f4a7c15
	z := c.random
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

const randomSeed = 0x6761_7665_6c00_0001 // "gavel" + 1

// now is Date.now and new Date(): the entry's time.
func (sb *sandbox) now() time.Time {
	if c := sb.cur; c != nil {
		sb.hostCall()
		sb.observeOpaque()
		return c.env.Time
	}
	return time.Unix(0, 0)
}

// inHost runs host work whose duration is not charged to the script.
func (sb *sandbox) inHost(f func()) {
	start := time.Now().UnixNano()
	sb.hostSince.Store(start)
	defer func() {
		sb.hostNanos.Add(time.Now().UnixNano() - start)
		sb.hostSince.Store(0)
	}()
	f()
}

// scriptTime is how long the call started at start has run script code by
// now: wall time minus host work.
func (sb *sandbox) scriptTime(start, now time.Time) time.Duration {
	used := now.Sub(start) - time.Duration(sb.hostNanos.Load())
	if since := sb.hostSince.Load(); since != 0 {
		used -= time.Duration(now.UnixNano() - since)
	}
	return used
}

// checkAbort stops the script from inside a host function once the watchdog
// has given up on it; goja itself only checks between instructions.
func (sb *sandbox) checkAbort() {
	if e := sb.abort.Load(); e != nil {
		panic(abortPanic{e})
	}
}

func (sb *sandbox) throwRange(format string, args ...any) {
	obj, err := sb.rt.New(sb.rangeError, sb.rt.ToValue(fmt.Sprintf(format, args...)))
	if err != nil {
		panic(sb.rt.NewTypeError(fmt.Sprintf(format, args...)))
	}
	panic(obj)
}

// pool keeps idle sandboxes, most recently used on top (its caches are
// warm); a call takes one or builds one. live counts sandboxes in use or
// idle, so the preparer does not build beyond what calls need.
var pool struct {
	sync.Mutex
	idle []*sandbox
	live int
}

// maxIdle bounds the pool: more sandboxes than concurrent calls are waste.
var maxIdle = 2*runtime.GOMAXPROCS(0) + 2

// getSandbox takes an idle sandbox holding an instance of mod prepared
// under b, else the most recently used one, else a new one.
func getSandbox(mod *module, b budget) (*sandbox, error) {
	pool.Lock()
	for i := len(pool.idle) - 1; i >= 0; i-- {
		if sb := pool.idle[i]; sb.hasReady(mod, b) {
			pool.idle = append(pool.idle[:i], pool.idle[i+1:]...)
			pool.Unlock()
			return sb, nil
		}
	}
	if n := len(pool.idle); n > 0 {
		sb := pool.idle[n-1]
		pool.idle = pool.idle[:n-1]
		pool.Unlock()
		return sb, nil
	}
	pool.Unlock()
	return buildSandbox()
}

func buildSandbox() (*sandbox, error) {
	sb, err := newSandbox()
	if err == nil {
		pool.Lock()
		pool.live++
		pool.Unlock()
	}
	return sb, err
}

func putSandbox(sb *sandbox) {
	pool.Lock()
	if len(pool.idle) < maxIdle {
		pool.idle = append(pool.idle, sb)
	} else {
		pool.live--
	}
	pool.Unlock()
}

// dropSandbox forgets a sandbox that failed in some way.
func dropSandbox() {
	pool.Lock()
	pool.live--
	pool.Unlock()
}

// invocation describes one entry-point call.
type invocation struct {
	mod    *module
	entry  string
	apply  bool
	args   func(rt *goja.Runtime) []goja.Value
	result func(sb *sandbox, v goja.Value) error // runs under the same limits

	joinPolicy bool // for reports (report.go): a join policy's apply
}

// run executes one call in a pooled sandbox. A sandbox that failed in any
// way is dropped rather than reused.
func run(env Env, inv invocation) (ov *overlay, err error) {
	if env.Time.IsZero() {
		return nil, engine.Errorf(engine.KindInternal, CodeMissingEntryTime, "Env.Time must be the entry's time")
	}
	limits := env.Limits.withDefaults()
	sb, err := getSandbox(inv.mod, budgetOf(limits))
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, CodeScriptInternalError, err, "cannot create a script sandbox")
	}
	c := &call{env: env, limits: limits, apply: inv.apply, overlay: newOverlay(env.State), random: randomSeed}
	sb.cur = c
	sb.exports = nil
	sb.joinStack = sb.joinStack[:0]
	sb.rt.SetMaxCallStackSize(limits.MaxCallStackSize)
	sb.hostNanos.Store(0)
	sb.hostSince.Store(0)
	watch.add(sb, time.Now(), limits)

	clean := false
	defer func() {
		watch.remove(sb)
		if env.fuelUsed != nil {
			*env.fuelUsed += c.used
		}
		reportCall(inv, c.used, err)
		sb.cur = nil
		sb.exports = nil
		if !clean || sb.abort.Load() != nil {
			dropSandbox()
			return
		}
		putSandbox(sb)
		if env.fuelUsed == nil {
			// For the next call of this module; a nested call's budget
			// (what its caller left) is unlikely to recur.
			wantReady(inv.mod, limits)
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			ov, err = nil, recovered(r)
		}
	}()
	if err := sb.invoke(inv); err != nil {
		return nil, err
	}
	clean = true
	return c.overlay, nil
}

func (sb *sandbox) invoke(inv invocation) error {
	res, err := sb.freshCall(inv)
	if err != nil {
		return sb.classify(err)
	}
	return inv.result(sb, res)
}

// freshCall calls the entry point of a fresh instance: one prepared ahead
// under the same budget, whose top-level fuel is charged first, or one
// instantiated now, in the same top-level call.
func (sb *sandbox) freshCall(inv invocation) (goja.Value, error) {
	args := make([]goja.Value, 0, 6)
	if in := sb.takeReady(inv.mod, budgetOf(sb.cur.limits)); in != nil {
		preparedCalls.Add(1)
		sb.charge(in.fuel)
		sb.exports = in.exports.(*goja.Object)
		args = append(args, goja.Null(), sb.rt.ToValue(inv.entry))
		return sb.driver(goja.Undefined(), append(args, inv.args(sb.rt)...)...)
	}
	factory, err := sb.factory(inv.mod)
	if err != nil {
		return nil, err
	}
	args = append(args, factory, sb.rt.ToValue(inv.entry))
	return sb.driver(goja.Undefined(), append(args, inv.args(sb.rt)...)...)
}

// instantiate runs the module's top level only and returns its exports.
func (sb *sandbox) instantiate(factory goja.Value) (goja.Value, error) {
	return sb.driver(goja.Undefined(), factory, goja.Null())
}

// factory is the sandbox's factory function of mod.
func (sb *sandbox) factory(mod *module) (goja.Value, error) {
	if f, ok := sb.factories[mod]; ok {
		return f, nil
	}
	f, err := sb.rt.RunProgram(mod.program)
	if err != nil {
		return nil, err
	}
	if len(sb.factories) >= maxFactories {
		clear(sb.factories)
	}
	sb.factories[mod] = f
	return f, nil
}

// recovered maps a panic that escaped goja (an abort from a host check, or
// a fault inside goja) to a typed error.
func recovered(r any) *engine.Error {
	switch v := r.(type) {
	case abortPanic:
		return v.err
	case *engine.Error:
		return v
	case error:
		return classify(v, "")
	default:
		return engine.Errorf(engine.KindInternal, CodeScriptInternalError, "script runtime panicked: %v", r)
	}
}

package constitution

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"
)

// Limits bounds one script call. A zero field takes its default.
//
// Two kinds of bound. The budget (MaxFuel, MaxCallStackSize, the string,
// array, depth and log limits) is deterministic: it counts work in the
// engine (fuel.go, instrument.go), so a script that exhausts it fails the
// same way on every machine, and the failure is a result. Its values are
// ledger state (RuntimeOptions, TableJSRuntimeOptions), read by the replica
// and the auditor alike.
//
// Timeout and MaxHeapGrowth are safety nets, set per process: goja cannot
// meter every allocation (object literals, closures) or a backtracking
// regular expression, so a watchdog interrupts a call that runs too long or
// grows the process heap too much. Such an outcome depends on the machine:
// it is never a result. The call fails with CodeScriptSafetyLimit
// (KindUnavailable, wrapping ErrSafetyLimit) and nothing may be written.
type Limits struct {
	// Timeout is the wall-clock safety net of one call; at most MaxTimeout
	// (see regexpTimeout).
	Timeout time.Duration
	// MaxHeapGrowth is the heap growth safety net of one call, in bytes.
	MaxHeapGrowth uint64

	// MaxFuel is the work one call may do (instrument.go).
	MaxFuel int64
	// MaxCallStackSize is the deepest JavaScript call nesting.
	MaxCallStackSize int
	// MaxArrayLength is the longest array, array-like or typed array a
	// guarded builtin accepts or creates.
	MaxArrayLength int
	// MaxStringLength is the longest string (in UTF-16 code units) or byte
	// buffer a script may build.
	MaxStringLength int
	// MaxDepth is the deepest nesting JSON.parse, JSON.stringify, join and
	// flat accept.
	MaxDepth int
	// MaxLogBytes is how much console output one call may capture.
	MaxLogBytes int
}

// Safety-net bounds a process may set (SafetyNet checks them).
const (
	MinTimeout       = 100 * time.Millisecond
	MaxTimeout       = 5 * time.Second
	MinHeapGrowth    = 32 << 20
	MaxHeapGrowthCap = 4 << 30
)

// DefaultSafetyNet is the default wall-clock and heap safety net.
func DefaultSafetyNet() Limits {
	return Limits{Timeout: 3 * time.Second, MaxHeapGrowth: 256 << 20}
}

// CheckSafetyNet refuses safety-net settings outside the supported range.
func CheckSafetyNet(l Limits) error {
	if l.Timeout < MinTimeout || l.Timeout > MaxTimeout {
		return fmt.Errorf("the script wall-clock safety limit must be between %v and %v, not %v", MinTimeout, MaxTimeout, l.Timeout)
	}
	if l.MaxHeapGrowth < MinHeapGrowth || l.MaxHeapGrowth > MaxHeapGrowthCap {
		return fmt.Errorf("the script heap safety limit must be between %d and %d bytes, not %d", MinHeapGrowth, MaxHeapGrowthCap, l.MaxHeapGrowth)
	}
	return nil
}

// DefaultLimits are the limits used for every zero field of Env.Limits:
// the default safety net and DefaultRuntimeOptions.
func DefaultLimits() Limits {
	return DefaultRuntimeOptions().Apply(DefaultSafetyNet())
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	l.Timeout = min(l.Timeout, MaxTimeout)
	if l.MaxHeapGrowth == 0 {
		l.MaxHeapGrowth = d.MaxHeapGrowth
	}
	if l.MaxFuel <= 0 {
		l.MaxFuel = d.MaxFuel
	}
	if l.MaxCallStackSize <= 0 {
		l.MaxCallStackSize = d.MaxCallStackSize
	}
	if l.MaxArrayLength <= 0 {
		l.MaxArrayLength = d.MaxArrayLength
	}
	if l.MaxStringLength <= 0 {
		l.MaxStringLength = d.MaxStringLength
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxLogBytes <= 0 {
		l.MaxLogBytes = d.MaxLogBytes
	}
	return l
}

// RuntimeOptions is the deterministic script budget, as stored in
// TableJSRuntimeOptions and set by the set_js_runtime_options action
// (schemas/actions/set_js_runtime_options.json has the same ranges). CCF's
// max_heap_bytes and max_execution_time_ms have no place here: in gavel
// they are per-process safety nets, not results (see Limits).
type RuntimeOptions struct {
	MaxFuel         int64 `json:"max_fuel"`
	MaxCallDepth    int   `json:"max_call_depth"`
	MaxStringLength int   `json:"max_string_length"`
	MaxArrayLength  int   `json:"max_array_length"`
	MaxNestingDepth int   `json:"max_nesting_depth"`
	MaxLogBytes     int   `json:"max_log_bytes"`
}

// DefaultRuntimeOptions is the budget of a new service, the one place its
// values are defined.
func DefaultRuntimeOptions() RuntimeOptions {
	return RuntimeOptions{
		MaxFuel:         1_000_000,
		MaxCallDepth:    1024,
		MaxStringLength: 1 << 22,
		MaxArrayLength:  1 << 18,
		MaxNestingDepth: 256,
		MaxLogBytes:     64 << 10,
	}
}

// runtimeOptionRanges are the accepted ranges, by JSON name.
var runtimeOptionRanges = []struct {
	name     string
	min, max int64
	get      func(*RuntimeOptions) int64
}{
	{"max_fuel", 10_000, 100_000_000, func(o *RuntimeOptions) int64 { return o.MaxFuel }},
	{"max_call_depth", 16, 10_000, func(o *RuntimeOptions) int64 { return int64(o.MaxCallDepth) }},
	{"max_string_length", 1 << 10, 1 << 24, func(o *RuntimeOptions) int64 { return int64(o.MaxStringLength) }},
	{"max_array_length", 1 << 10, 1 << 22, func(o *RuntimeOptions) int64 { return int64(o.MaxArrayLength) }},
	{"max_nesting_depth", 8, 1024, func(o *RuntimeOptions) int64 { return int64(o.MaxNestingDepth) }},
	{"max_log_bytes", 0, 1 << 20, func(o *RuntimeOptions) int64 { return int64(o.MaxLogBytes) }},
}

// Check refuses values outside the accepted ranges.
func (o RuntimeOptions) Check() error {
	for _, r := range runtimeOptionRanges {
		if v := r.get(&o); v < r.min || v > r.max {
			return fmt.Errorf("%s must be between %d and %d, not %d", r.name, r.min, r.max, v)
		}
	}
	return nil
}

// Apply sets the budget fields of l.
func (o RuntimeOptions) Apply(l Limits) Limits {
	l.MaxFuel = o.MaxFuel
	l.MaxCallStackSize = o.MaxCallDepth
	l.MaxStringLength = o.MaxStringLength
	l.MaxArrayLength = o.MaxArrayLength
	l.MaxDepth = o.MaxNestingDepth
	l.MaxLogBytes = o.MaxLogBytes
	return l
}

// ParseRuntimeOptions reads a stored record: the named fields over the
// defaults, checked.
func ParseRuntimeOptions(b []byte) (RuntimeOptions, error) {
	o := DefaultRuntimeOptions()
	if err := json.Unmarshal(b, &o); err != nil {
		return DefaultRuntimeOptions(), fmt.Errorf("js runtime options: %w", err)
	}
	if err := o.Check(); err != nil {
		return DefaultRuntimeOptions(), fmt.Errorf("js runtime options: %w", err)
	}
	return o, nil
}

// LoadRuntimeOptions is the budget in force in st: the defaults while the
// table is absent (a ledger older than the table) or, deterministically,
// if a constitution stored something invalid there.
func LoadRuntimeOptions(st StateReader) (RuntimeOptions, error) {
	b, ok, err := st.Get(TableJSRuntimeOptions, "")
	if err != nil || !ok {
		return DefaultRuntimeOptions(), err
	}
	// Every request reads the budget; it changes by vote.
	if last := lastOptions.Load(); last != nil && last.raw == string(b) {
		return last.opts, nil
	}
	o, err := ParseRuntimeOptions(b)
	if err != nil {
		o = DefaultRuntimeOptions()
	}
	lastOptions.Store(&parsedOptions{raw: string(b), opts: o})
	return o, nil
}

// parsedOptions is a stored budget record and what it reads as.
type parsedOptions struct {
	raw  string
	opts RuntimeOptions
}

var lastOptions atomic.Pointer[parsedOptions]

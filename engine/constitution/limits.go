package constitution

import "time"

// Limits bounds one script call. A zero field takes its default.
//
// Time and stack are exact bounds. Memory is guarded in two ways, because
// goja cannot meter allocation: builtins that can create a large value in one
// step (String.prototype.repeat, padStart, join, JSON.stringify, typed array
// and Set/Map constructors, Function.prototype.apply, every Array.prototype
// method that walks `length`, …) check MaxStringLength, MaxArrayLength and
// MaxDepth before they allocate; gradual growth is caught by a watchdog that
// samples the process heap every millisecond and interrupts a call whose
// heap growth since it started exceeds MaxHeapGrowth (confirmed by a forced
// GC first, so garbage does not count). The heap is process-wide: a call that
// runs while another allocates heavily may be charged for it, and the budget
// may be overshot by what a script allocates within one sampling period.
// Timeouts and memory failures depend on the machine, so they are errors,
// never results: the sequencer must not record them as a script's answer
// without care (see ScriptTimeout).
type Limits struct {
	// Timeout is the wall-clock budget of one call, module instantiation
	// included; at most one second (see regexpTimeout).
	Timeout time.Duration
	// MaxCallStackSize is the deepest JavaScript call nesting.
	MaxCallStackSize int
	// MaxHeapGrowth is how many bytes the live heap may grow during a call.
	MaxHeapGrowth uint64
	// MaxArrayLength is the longest array, array-like or typed array a
	// guarded builtin accepts or creates.
	MaxArrayLength int
	// MaxStringLength is the longest string (in UTF-16 code units) or byte
	// buffer a guarded builtin creates.
	MaxStringLength int
	// MaxDepth is the deepest nesting JSON.parse, JSON.stringify, join and
	// flat accept.
	MaxDepth int
	// MaxLogBytes is how much console output one call may capture.
	MaxLogBytes int
}

// DefaultLimits are the limits used for every zero field of Env.Limits.
func DefaultLimits() Limits {
	return Limits{
		Timeout:          100 * time.Millisecond,
		MaxCallStackSize: 1024,
		MaxHeapGrowth:    128 << 20,
		MaxArrayLength:   1 << 18,
		MaxStringLength:  1 << 22,
		MaxDepth:         256,
		MaxLogBytes:      64 << 10,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	l.Timeout = min(l.Timeout, maxTimeout)
	if l.MaxCallStackSize <= 0 {
		l.MaxCallStackSize = d.MaxCallStackSize
	}
	if l.MaxHeapGrowth == 0 {
		l.MaxHeapGrowth = d.MaxHeapGrowth
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

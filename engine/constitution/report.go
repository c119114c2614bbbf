package constitution

import (
	"sync"
	"sync/atomic"

	"github.com/gavelhq/gavel/engine"
)

// CallReport describes one script call, for metrics. It is observed, never
// part of a result: nothing in it reaches the ledger.
type CallReport struct {
	Call string // validate, resolve, apply, vote or join_policy
	Fuel int64  // budget units the call used
	Code string // "" when the call returned, else its error's code
}

// observers are the functions told of every call; copy on write, so a
// call reads them without a lock.
var (
	observers   atomic.Pointer[[]*func(CallReport)]
	observersMu sync.Mutex
)

// Observe tells fn of every script call in this process until stop is
// called. fn runs on the calling goroutine and must not block.
func Observe(fn func(CallReport)) (stop func()) {
	p := &fn
	update := func(edit func([]*func(CallReport)) []*func(CallReport)) {
		observersMu.Lock()
		defer observersMu.Unlock()
		var cur []*func(CallReport)
		if o := observers.Load(); o != nil {
			cur = *o
		}
		next := edit(append([]*func(CallReport){}, cur...))
		observers.Store(&next)
	}
	update(func(o []*func(CallReport)) []*func(CallReport) { return append(o, p) })
	return func() {
		update(func(o []*func(CallReport)) []*func(CallReport) {
			for i, q := range o {
				if q == p {
					return append(o[:i], o[i+1:]...)
				}
			}
			return o
		})
	}
}

func reportCall(inv invocation, used int64, err error) {
	o := observers.Load()
	if o == nil || len(*o) == 0 {
		return
	}
	r := CallReport{Call: inv.entry, Fuel: used}
	if inv.joinPolicy {
		r.Call = "join_policy"
	}
	if err != nil {
		r.Code = engine.AsError(err).Code
	}
	for _, fn := range *o {
		(*fn)(r)
	}
}

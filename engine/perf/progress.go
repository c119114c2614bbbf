package perf

import (
	"context"
	"sync/atomic"
	"time"
)

// ProgressFunc is told how many of a phase's calls are done; it is called
// from one goroutine at a time, a few times a second and once at the end.
type ProgressFunc func(phase string, done, total int)

type progressKey struct{}

// WithProgress makes every load phase of a benchmark run under ctx report
// to f.
func WithProgress(ctx context.Context, f ProgressFunc) context.Context {
	return context.WithValue(ctx, progressKey{}, f)
}

// reportProgress reports done out of total for phase until stop is called
// (which reports once more), if ctx carries a ProgressFunc.
func reportProgress(ctx context.Context, phase string, total int, done *atomic.Int64) (stop func()) {
	f, _ := ctx.Value(progressKey{}).(ProgressFunc)
	if f == nil {
		return func() {}
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				f(phase, int(done.Load()), total)
				return
			case <-t.C:
				f(phase, int(done.Load()), total)
			}
		}
	}()
	return func() { close(quit); <-finished }
}

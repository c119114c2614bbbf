package constitution

import (
	"syscall"
	"testing"
	"time"
)

func processCPU() time.Duration {
	var r syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// reportCPU adds "cpu-ns/op": process CPU time (user+system, GC included)
// per iteration, a figure less sensitive than wall time to other load on a
// shared machine. Call it right after the timed loop.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
}

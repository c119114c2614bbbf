package constitution

import (
	"runtime/metrics"
	"testing"
)

func BenchmarkMetrics(b *testing.B) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	for b.Loop() {
		metrics.Read(s)
	}
	b.Log(s[0].Value.Uint64(), s[1].Value.Uint64())
}

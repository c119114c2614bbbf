package constitution

import (
	"testing"

	"github.com/dop251/goja"
)

// BenchmarkFuelCheck measures what a fuel check costs per loop iteration:
// a bare loop, the instrumented decrement of a global lexical counter (what
// instrument.go inserts), and, for comparison, a host call per iteration.
func BenchmarkFuelCheck(b *testing.B) {
	const n = 100_000
	for _, tc := range []struct{ name, body string }{
		{"bare", ""},
		{"js-counter", "if (--__f < 0) __r();"},
		{"host-call", "__h();"},
		{"closure-counter", "local"},
		{"lexical-host-call", "__t();"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			rt := goja.New()
			rt.Set("__h", func(goja.FunctionCall) goja.Value { return goja.Undefined() })
			if _, err := rt.RunString("let __f = 1e15; const __r = () => {}; const __t = __h;"); err != nil {
				b.Fatal(err)
			}
			src := `(function () { "use strict"; let x = 0; for (let i = 0; i < 100000; i++) { ` + tc.body + ` x++; } return x; })`
			if tc.body == "local" {
				src = `(function () { "use strict"; let __g = 1e15; const __q = () => {}; return function () { let x = 0; for (let i = 0; i < 100000; i++) { if (--__g < 0) __q(); x++; } return x; }; })()`
			}
			v, err := rt.RunString(src)
			if err != nil {
				b.Fatal(err)
			}
			f, _ := goja.AssertFunction(v)
			start := processCPU()
			for b.Loop() {
				if _, err := f(goja.Undefined()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(processCPU()-start)/float64(b.N)/n, "cpu-ns/iteration")
		})
	}
}

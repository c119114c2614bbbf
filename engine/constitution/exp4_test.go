package constitution

import (
	"runtime"
	"testing"
	"time"

	"github.com/dop251/goja"
)

func TestAllocPatterns(t *testing.T) {
	for _, src := range []string{
		`new Array(1e9).length`,
		`new Array(4e6).fill(0).length`,
		`new ArrayBuffer(1e6).byteLength`,
		`new Uint8Array(1e6).length`,
		`Array.from({length: 1e5}).length`,
		`var a=[]; a.length = 1e9; a.length`,
		`"x".padEnd(1e6).length`,
		`var s="x"; for (var i=0;i<20;i++) s+=s; s.length`,
		`var o={}; o.x=1; Object.freeze(o); (function(){"use strict"; try { o.x=2; return "no throw" } catch(e) { return String(e)} })()`,
		`var p = Object.freeze({name:"a"}); var c = Object.create(p); (function(){"use strict"; try { c.name="b"; return c.name } catch(e) { return String(e)} })()`,
		`typeof WeakRef + typeof FinalizationRegistry + typeof Proxy + typeof Reflect + typeof globalThis + typeof SharedArrayBuffer + typeof Atomics`,
		`Object.getOwnPropertyNames(globalThis).join(",")`,
		`typeof RegExp.$1`,
	} {
		r := goja.New()
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		t0 := time.Now()
		v, err := r.RunString(src)
		runtime.ReadMemStats(&m1)
		t.Logf("%-60.60s => %v %v  %v  alloc=%dMB", src, v, err, time.Since(t0), (m1.TotalAlloc-m0.TotalAlloc)>>20)
	}
}

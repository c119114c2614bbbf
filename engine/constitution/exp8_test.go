package constitution

import (
	"testing"
	"time"

	"github.com/dop251/goja"
)

func TestSparse2(t *testing.T) {
	for _, src := range []string{
		`(function(){ var a=[]; a.length=1e6; return Math.max(...a) })()`,
		`(function(){ var a=[]; a.length=1e6; var n=0; for (var x of a) n++; return n })()`,
		`(function(){ var a=[]; a.length=1e6; return Math.max.apply(null, a) })()`,
		`(function(){ return Math.max.apply(null, {length: 1e6}) })()`,
		`(function(){ var a=[]; a.length=1e6; return [...a].length })()`,
		`(function(){ var a=[]; a.length=1e6; return Array.from(a).length })()`,
		`(function(){ var a=[]; a.length=1e6; return new Set(a).size })()`,
		`(function(){ var a=[]; a.length=1e6; return Object.keys(a).length })()`,
		`(function(){ var a=[]; a[1e6]=1; var n=0; for (var k in a) n++; return n })()`,
	} {
		r := goja.New()
		go func() { time.Sleep(20 * time.Millisecond); r.Interrupt("timeout") }()
		t0 := time.Now()
		v, err := r.RunString(src)
		t.Logf("%-70.70s => %v %v %v", src, v, err, time.Since(t0))
	}
}

package constitution

import (
	"testing"

	"github.com/dop251/goja"
)

func benchSrc(b *testing.B, src string) {
	p := goja.MustCompile("m", src, true)
	r := goja.New()
	f, err := r.RunProgram(p)
	if err != nil { b.Fatal(err) }
	fn, _ := goja.AssertFunction(f)
	for b.Loop() {
		if _, err := fn(goja.Undefined()); err != nil { b.Fatal(err) }
	}
}

func BenchmarkEmpty(b *testing.B) { benchSrc(b, `(function(){ return 1 })`) }
func BenchmarkClass(b *testing.B) { benchSrc(b, `(function(){ class A { constructor(v){this.v=v} }; return new A(1) })`) }
func BenchmarkMap(b *testing.B) { benchSrc(b, `(function(){ return new Map([["a",1],["b",2]]) })`) }
func BenchmarkClosures(b *testing.B) { benchSrc(b, `(function(){ const o = []; for (let i=0;i<28;i++) o.push(function(){return i}); return o })`) }
func BenchmarkObjs(b *testing.B) { benchSrc(b, `(function(){ return {a: function(){}, b: function(){}, c: function(){}} })`) }

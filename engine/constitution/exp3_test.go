package constitution

import "testing"

func BenchmarkFuncs10(b *testing.B) { benchSrc(b, `(function(){ return [function(){},function(){},function(){},function(){},function(){},function(){},function(){},function(){},function(){},function(){}] })`) }
func BenchmarkArrows10(b *testing.B) { benchSrc(b, `(function(){ return [()=>1,()=>1,()=>1,()=>1,()=>1,()=>1,()=>1,()=>1,()=>1,()=>1] })`) }
func BenchmarkDecl10(b *testing.B) { benchSrc(b, `(function(){ function a(){} function b(){} function c(){} function d(){} function e(){} function f(){} function g(){} function h(){} function i(){} function j(){} return a })`) }
func BenchmarkLoopLet(b *testing.B) { benchSrc(b, `(function(){ const o = []; for (let i=0;i<28;i++) o.push(i); return o })`) }
func BenchmarkLoopVar(b *testing.B) { benchSrc(b, `(function(){ var o = []; for (var i=0;i<28;i++) o.push(i); return o })`) }

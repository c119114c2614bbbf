package constitution

import (
	"testing"

	"github.com/dop251/goja"
)

const modSrc = `(function(){
class Action { constructor(v, a) { this.validate = v; this.apply = a; } }
function checkType(v, t, f) { if (typeof v !== t) throw new Error(f + " bad"); }
const actions = new Map([
 ["a1", new Action(function(a){checkType(a.x,"string","x")}, function(a){})],
 ["a2", new Action(function(a){checkType(a.x,"string","x")}, function(a){})],
 ["a3", new Action(function(a){checkType(a.x,"string","x")}, function(a){})],
 ["a4", new Action(function(a){checkType(a.x,"string","x")}, function(a){})],
 ["a5", new Action(function(a){checkType(a.x,"string","x")}, function(a){})],
 ["a6", new Action(function(a){checkType(a.x,"string","x")}, function(a){})],
 ["a7", new Action(function(a){checkType(a.x,"string","x")}, function(a){})],
 ["a8", new Action(function(a){checkType(a.x,"string","x")}, function(a){})],
 ["a9", new Action(function(a){checkType(a.x,"string","x")}, function(a){})],
 ["a10", new Action(function(a){checkType(a.x,"string","x")}, function(a){})],
 ["a11", new Action(function(a){checkType(a.x,"string","x")}, function(a){})],
 ["a12", new Action(function(a){checkType(a.x,"string","x")}, function(a){})],
 ["a13", new Action(function(a){checkType(a.x,"string","x")}, function(a){})],
 ["a14", new Action(function(a){checkType(a.x,"string","x")}, function(a){})],
]);
function resolve(proposal, proposerId, votes) {
  let yes = 0, no = 0;
  for (const v of votes) { if (v.vote) yes++; else no++; }
  const n = 3;
  if (yes > Math.floor(n/2)) return "Accepted";
  if (no > Math.floor(n/2)) return "Rejected";
  return "Open";
}
return {resolve, actions};
})`

func BenchmarkNew(b *testing.B) {
	for b.Loop() {
		goja.New()
	}
}

func BenchmarkNewRun(b *testing.B) {
	p := goja.MustCompile("m", modSrc, true)
	for b.Loop() {
		r := goja.New()
		f, _ := r.RunProgram(p)
		fn, _ := goja.AssertFunction(f)
		exp, _ := fn(goja.Undefined())
		res, _ := goja.AssertFunction(exp.ToObject(r).Get("resolve"))
		votes := r.NewArray(map[string]any{"member_id": "a", "vote": true})
		res(goja.Undefined(), r.ToValue("{}"), r.ToValue("p"), votes)
	}
}

func BenchmarkReuseFactory(b *testing.B) {
	p := goja.MustCompile("m", modSrc, true)
	r := goja.New()
	f, _ := r.RunProgram(p)
	fn, _ := goja.AssertFunction(f)
	for b.Loop() {
		exp, _ := fn(goja.Undefined())
		res, _ := goja.AssertFunction(exp.ToObject(r).Get("resolve"))
		votes := r.NewArray(map[string]any{"member_id": "a", "vote": true})
		res(goja.Undefined(), r.ToValue("{}"), r.ToValue("p"), votes)
	}
}

func BenchmarkReuseExports(b *testing.B) {
	p := goja.MustCompile("m", modSrc, true)
	r := goja.New()
	f, _ := r.RunProgram(p)
	fn, _ := goja.AssertFunction(f)
	exp, _ := fn(goja.Undefined())
	res, _ := goja.AssertFunction(exp.ToObject(r).Get("resolve"))
	for b.Loop() {
		votes := r.NewArray(map[string]any{"member_id": "a", "vote": true})
		res(goja.Undefined(), r.ToValue("{}"), r.ToValue("p"), votes)
	}
}

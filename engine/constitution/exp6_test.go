package constitution

import (
	"testing"

	"github.com/dop251/goja"
)

func TestFeatures(t *testing.T) {
	for _, src := range []string{
		`var o = {a: {b: 1}}; o?.a?.b ?? 2`,
		`class A { x = 1; #y = 2; static z = 3; getY() { return this.#y } }; new A().getY()`,
		`var {a, ...rest} = {a:1, b:2}; JSON.stringify({...rest})`,
		`async function f() { await 1; return 2 }; typeof f`,
		`try { throw 1 } catch { 3 }`,
		`[1,[2]].flat().length`,
		`Object.fromEntries([["a",1]]).a`,
		`"a-b".replaceAll("-", "+")`,
		`[1,2].at(-1)`,
		`Object.hasOwn({a:1}, "a")`,
		`2n ** 64n`,
		`/(?<y>\d+)/.exec("12").groups.y`,
		`(function(){ "use strict"; function f(){ f() }; try { f() } catch (e) { return "caught " + e } })()`,
	} {
		r := goja.New()
		r.SetMaxCallStackSize(100)
		v, err := r.RunString(src)
		t.Logf("%-60.60s => %v %v", src, v, err)
	}
}

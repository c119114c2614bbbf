package constitution

import (
	"testing"

	"github.com/dop251/goja/parser"
)

// TestInstrumentationKeepsSemantics: rewritten concatenations, templates
// and compound assignments compute what the source says, evaluate each
// operand once and in order.
func TestInstrumentationKeepsSemantics(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"1 + 2", "3"},
		{`"a" + 1 + 2`, `"a12"`},
		{`1 + 2 + "a"`, `"3a"`},
		{`(1, "x") + ("y", 2)`, `"x2"`},
		{"`a${1 + 1}b${`c${'d'}`}`", `"a2bcd"`},
		{"`${{ toString() { return 'o'; } }}`", `"o"`},
		{"String.raw`a${1}\\n`", `"a1\\n"`},
		{`(() => { let s = "a"; s += "b"; s += 1; return s; })()`, `"ab1"`},
		{`(() => { const o = { p: "a" }; o.p += "b"; return o.p; })()`, `"ab"`},
		{`(() => { const log = []; const o = { p: "a" }; const k = () => (log.push("k"), "p"); const v = () => (log.push("v"), "b"); o[k()] += v(); return [o.p, log]; })()`, `["ab",["k","v"]]`},
		{`(() => { class C { #n = "a"; m() { this.#n += "b"; return this.#n; } } return new C().m(); })()`, `"ab"`},
		{`(() => { let n = 1; n += 2; return n; })()`, `3`},
		{`(() => { const a = [1]; a[0] += 1; return a; })()`, `[2]`},
		{`[1, 2, 3].map((x) => x + 1)`, `[2,3,4]`},
		{`(() => { let s = ""; for (const c of "abc") s += c; for (const k in { x: 1 }) s += k; outer: for (let i = 0; i < 3; i++) { for (;;) continue outer; } return s; })()`, `"abcx"`},
	}
	for _, tc := range tests {
		if got := describeWith(t, tc.expr); got != tc.want {
			t.Errorf("%s = %s, want %s", tc.expr, got, tc.want)
		}
	}
}

func TestInstrumentationRefuses(t *testing.T) {
	for _, src := range []string{
		"export function vote() { return 1n > 0; }",
		"export function vote() { const __gavel_tick = 1; return true; }",
		"export function vote() { return typeof __gavel_s === 'function'; }",
		"class A { m() { return 1; } } class B extends A { m() { super.x += 1; return true; } } export function vote() { return new B().m(); }",
	} {
		if _, err := CompileBallot(src); codeOf(err) != CodeBallotCompileError {
			t.Errorf("%s: %v", src, err)
		}
	}
}

// FuzzInstrument: whatever the parser accepts, the instrumenter either
// refuses or produces source the parser accepts.
func FuzzInstrument(f *testing.F) {
	for _, s := range []string{
		"x = a + b;", "s += `${a}${b}`;", "o.p += 1; o[k] += 2; for (;;) {}",
		"const f = (a) => a + 1; while (a) b(); do {} while (c);",
		"class C { static { x = 1 + y; } #p = 1; m() { this.#p += 'a'; } get g() { return 1; } }",
		"l: for (const x of y) { continue l; } for (const k in o) if (k) s += k; else s += '';",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		src := "(() => {\n" + body + "\n})();"
		if _, err := parser.ParseFile(nil, "f.js", src, 0); err != nil {
			return
		}
		out, err := instrument(src)
		if err != nil {
			return
		}
		if _, err := parser.ParseFile(nil, "out.js", out, 0); err != nil {
			t.Fatalf("instrumented source does not parse: %v\n%s\n=>\n%s", err, src, out)
		}
	})
}

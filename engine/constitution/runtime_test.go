package constitution

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/scripts"
)

// module builds a one-file constitution whose entry points default to
// trivial ones.
func oneModule(t testing.TB, body string) *Constitution {
	t.Helper()
	src := body
	for _, fn := range []string{"validate", "resolve", "apply"} {
		if !strings.Contains(body, "function "+fn+"(") {
			switch fn {
			case "validate":
				src += "\nexport function validate() { return { valid: true, description: \"\" }; }"
			case "resolve":
				src += "\nexport function resolve() { return \"Open\"; }"
			case "apply":
				src += "\nexport function apply() {}"
			}
		}
	}
	c, err := CompileModule(src)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string // substring of the message
	}{
		{"syntax", map[string]string{FileConstitution: "export function validate( {"}, "Expected identifier"},
		{"missing export", map[string]string{FileConstitution: "export function validate() {}"}, `No matching export in "gavel:constitution.js" for import "resolve"`},
		{"package import", map[string]string{FileConstitution: `import fs from "fs"; export function validate() {} export function resolve() {} export function apply() {}`}, `cannot import "fs"`},
		{"missing file", map[string]string{FileConstitution: `import { x } from "./x.js"; export function validate() {} export function resolve() {} export function apply() {}`}, `no file "x.js"`},
		{"no entry files", map[string]string{"validate.js": "export function validate() {}"}, "resolve.js is missing"},
		{"bad file name", map[string]string{"../escape.js": "", FileConstitution: ""}, "must be a relative path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.files)
			if codeOf(err) != CodeConstitutionCompileError {
				t.Fatalf("got %v, want %s", err, CodeConstitutionCompileError)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%q does not mention %q", err, tc.want)
			}
		})
	}
	for _, src := range []string{
		`import x from "./other.js"; export function vote() { return true }`,
		`export function vote( { return true }`,
		`export function ballot() { return true }`,
		`export const vote = 1; export function x() {`,
	} {
		if _, err := CompileBallot(src); codeOf(err) != CodeBallotCompileError {
			t.Errorf("CompileBallot(%q) = %v, want %s", src, err, CodeBallotCompileError)
		}
	}
}

func TestCompileIsCached(t *testing.T) {
	files := map[string]string{FileConstitution: "export function validate() {} export function resolve() { return 'Open' } export function apply() {}"}
	first, err := Compile(files)
	if err != nil {
		t.Fatal(err)
	}
	before := compilations.Load()
	again, err := Compile(map[string]string{FileConstitution: files[FileConstitution]})
	if err != nil {
		t.Fatal(err)
	}
	if again != first || compilations.Load() != before {
		t.Fatalf("recompiled: same=%v, compilations %d → %d", again == first, before, compilations.Load())
	}
	b1 := ballot(t, "export function vote() { return true }")
	before = compilations.Load()
	if b2 := ballot(t, "export function vote() { return true }"); b2 != b1 || compilations.Load() != before {
		t.Fatal("ballot recompiled")
	}
	if b1.Hash() == [32]byte{} || first.Hash() == [32]byte{} {
		t.Fatal("zero hash")
	}
}

func TestLRU(t *testing.T) {
	c := newLRU[string, int](2)
	c.add("a", 1)
	c.add("b", 2)
	if v := c.add("a", 9); v != 1 {
		t.Fatalf("add of a present key returned %d, want the cached 1", v)
	}
	c.add("c", 3) // evicts b, the least recently used
	if _, ok := c.get("b"); ok {
		t.Fatal("b survived")
	}
	for k, want := range map[string]int{"a": 1, "c": 3} {
		if v, ok := c.get(k); !ok || v != want {
			t.Fatalf("%s = %d %v", k, v, ok)
		}
	}
	if c.len() != 2 || ballots.max != ballotCacheSize || constitutions.max != constitutionCacheSize {
		t.Fatal("caches are not bounded as configured")
	}
}

func TestBundleMatchesFiles(t *testing.T) {
	src, err := DefaultModule()
	if err != nil {
		t.Fatal(err)
	}
	single, err := CompileModule(src)
	if err != nil {
		t.Fatal(err)
	}
	multi := defaultConstitution(t)
	e := env(stateWithMembers(t, members(t, 1)))
	for _, p := range []string{proposal(t, action("remove_node_join_policy", nil)), `{"actions":[]}`, "nope"} {
		a, errA := single.Validate(e, p)
		b, errB := multi.Validate(e, p)
		if a != b || codeOf(errA) != codeOf(errB) {
			t.Fatalf("%s: bundled %v %v, files %v %v", p, a, errA, b, errB)
		}
	}
}

// hostile is a ballot that misbehaves; every case must end in the given
// typed error, quickly, and leave the runtime serving normal calls.
func TestHostileScripts(t *testing.T) {
	// Cases that must hit a guard get the longest budget, so that a slow or
	// busy machine (or the race detector) still reaches the guard; cases
	// that must time out get a short one.
	// The budget is small so that even a loaded machine exhausts it long
	// before the wall-clock safety net: the outcomes are deterministic.
	limits := Limits{Timeout: MaxTimeout, MaxHeapGrowth: 64 << 20, MaxFuel: 300_000}
	quick := &Limits{Timeout: 100 * time.Millisecond, MaxHeapGrowth: 64 << 20, MaxFuel: 300_000}
	memory := &Limits{Timeout: MaxTimeout, MaxHeapGrowth: 16 << 20, MaxFuel: 300_000}
	// Building strings is cheap per unit: these reach the length limit.
	strings := &Limits{Timeout: MaxTimeout, MaxHeapGrowth: 256 << 20, MaxFuel: 2_000_000}
	tests := []struct {
		name, body, code string
		limits           *Limits // default: limits
	}{
		{"loops forever", `for (;;) {}`, CodeScriptBudgetExceeded, nil},
		{"loops forever in a while", `let i = 0; while (true) i++;`, CodeScriptBudgetExceeded, nil},
		{"loops forever in a do-while", `do {} while (true);`, CodeScriptBudgetExceeded, nil},
		{"loops with labelled continue", `outer: for (;;) { for (;;) continue outer; }`, CodeScriptBudgetExceeded, nil},
		{"loops in for-of over a generator", `function* g() { for (;;) yield 1; } for (const x of g()) {}`, CodeScriptBudgetExceeded, nil},
		{"recurses in arrows across a try", `const f = (n) => { try { return f(n + 1); } catch (e) { return f(n + 1); } }; return f(0);`, CodeScriptStackOverflow, nil},
		{"uses the Function constructor", `return new Function("for(;;){}")()`, CodeScriptThrew, nil},
		{"uses a generator's Function constructor", `return new (Object.getPrototypeOf(function* () {}).constructor)("for(;;){}")().next()`, CodeScriptThrew, nil},
		{"uses BigInt", `return BigInt(1) > 0`, CodeScriptThrew, nil},
		{"doubles a string by +", `let s = "x"; for (;;) s = s + s;`, CodeScriptThrew, strings},
		{"doubles a string by += and catches", `let s = "x"; for (;;) { try { s += s; } catch (e) {} }`, CodeScriptBudgetExceeded, nil},
		{"doubles a property by += and catches", `const o = { s: "x" }; for (;;) { try { o.s += o.s; } catch (e) {} }`, CodeScriptBudgetExceeded, nil},
		{"doubles an element by += and catches", `const o = ["x"]; for (;;) { try { o[0] += o[0]; } catch (e) {} }`, CodeScriptBudgetExceeded, nil},
		{"doubles a string by template", "let s = 'x'; for (;;) s = `${s}${s}`;", CodeScriptThrew, strings},
		{"nests templates over a big string", "const s = 'x'.repeat(1 << 22); return `${s}${s}${s}${s}`.length > 0", CodeScriptThrew, strings},
		{"joins a typed array with a huge separator", `return new Uint8Array(1 << 18).join("x".repeat(1 << 22)).length > 0`, CodeScriptThrew, strings},
		{"grows an array by push", `const a = []; for (;;) a.push(a.length);`, CodeScriptThrew, strings},
		{"grows an array by push and catches", `const a = []; for (;;) { try { a.push(a.length); } catch (e) {} }`, CodeScriptBudgetExceeded, nil},
		{"lists keys of a large object in a loop", `const o = {}; for (let i = 0; i < 20000; i++) o["k" + i] = i; for (;;) Object.keys(o);`, CodeScriptBudgetExceeded, nil},
		{"checks fresh constitutions in a loop", "for (let i = 0; ; i++) gavel.constitution.check(`export function validate() { return { valid: true }; } export function resolve() { return \"Accepted\"; } export function apply() { gavel.kv.set(\"gov.constitution\", \"\", ${i}); }`);", CodeScriptBudgetExceeded, nil},
		{"recurses forever", `function f() { return f() + 1; } return f();`, CodeScriptStackOverflow, nil},
		{"recurses through a builtin", `function f() { return [1].map(f); } return f();`, CodeScriptStackOverflow, nil},
		{"throws", `throw new Error("no")`, CodeScriptThrew, nil},
		{"throws a string", `throw "no"`, CodeScriptThrew, nil},
		{"returns a number", `return 1`, CodeScriptBadResult, nil},
		{"returns an object", `return {}`, CodeScriptBadResult, nil},
		{"returns undefined", `return`, CodeScriptBadResult, nil},
		{"returns a Boolean object", `return new Boolean(false)`, CodeScriptBadResult, nil},
		{"returns an object whose getter loops", `return { get x() { for (;;) {} } }`, CodeScriptBadResult, nil},
		{"allocates objects without bound", `const a = []; for (;;) a.push({ n: a.length, list: [1, 2, 3] });`, CodeScriptSafetyLimit, memory},
		{"allocates strings without bound", `const a = []; for (;;) a.push("x".repeat(1 << 10).repeat(1 << 10) + a.length);`, CodeScriptBudgetExceeded, memory},
		{"doubles a string", `let s = "x"; for (;;) s += s;`, CodeScriptThrew, strings},
		{"repeats a string", `return "x".repeat(2 ** 30).length > 0`, CodeScriptThrew, nil},
		{"pads a string", `return "x".padEnd(2 ** 30).length > 0`, CodeScriptThrew, nil},
		{"fills a sparse array", `const a = []; a.length = 2 ** 32 - 1; a.fill(0); return true`, CodeScriptThrew, nil},
		{"spreads a sparse array", `const a = []; a.length = 2 ** 32 - 1; return [...a].length > 0`, CodeScriptBudgetExceeded, nil},
		{"joins shared strings", `const s = "x".repeat(1 << 20); return new Array(1 << 12).fill(s).join("").length > 0`, CodeScriptThrew, strings},
		{"stringifies shared strings", `const s = "x".repeat(1 << 20); return JSON.stringify(new Array(1 << 12).fill(s)).length > 0`, CodeScriptThrew, strings},
		{"stringifies deep nesting", `let a = []; for (let i = 0; i < 100000; i++) a = [a]; return JSON.stringify(a).length > 0`, CodeScriptThrew, nil},
		{"parses deep nesting", `return JSON.parse("[".repeat(100000) + "]".repeat(100000)) !== null`, CodeScriptThrew, nil},
		{"flattens a cycle", `const a = [1]; a.push(a); return a.flat(Infinity).length > 0`, CodeScriptThrew, nil},
		{"applies a fake array", `return Math.max.apply(null, { length: 2 ** 32 - 1 }) > 0`, CodeScriptThrew, nil},
		{"builds a huge typed array", `return new Uint8Array(2 ** 31).length > 0`, CodeScriptThrew, nil},
		{"builds a huge buffer", `return new ArrayBuffer(2 ** 40).byteLength > 0`, CodeScriptThrew, nil},
		{"fills a Set from a sparse array", `const a = []; a.length = 2 ** 32 - 1; return new Set(a).size > 0`, CodeScriptThrew, nil},
		{"replaces into a huge string", `const s = "x".repeat(1 << 16); return s.replace(/x/g, "y".repeat(1 << 10)).length > 0`, CodeScriptBudgetExceeded, strings},
		{"backtracks catastrophically", `return /^(a+)+(?=c)/.test("a".repeat(40))`, CodeScriptSafetyLimit, quick},
		{"catches and loops", `for (;;) { try { for (;;) {} } catch (e) {} }`, CodeScriptBudgetExceeded, nil},
		{"uses eval", `return eval("1") === 1`, CodeScriptThrew, nil},
		{"reads an engine table", `return gavel.kv.get("gavel.gov.proposals", "x") === undefined`, CodeScriptThrew, nil},
		{"lists the statements index", `return gavel.kv.keys("gavel.statements").length === 0`, CodeScriptThrew, nil},
	}
	e := env(MemState{})
	e.Limits = limits
	normal := ballot(t, `export function vote() { return true }`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := ballot(t, "export function vote(proposal, proposerId) {\n"+tc.body+"\n}")
			ce := e
			if tc.limits != nil {
				ce.Limits = *tc.limits
			}
			start := time.Now()
			_, err := b.Vote(ce, "{}", "m")
			if codeOf(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
			if took := time.Since(start); took > regexpTimeout+5*time.Second {
				t.Fatalf("took %v", took)
			}
			if ok, err := normal.Vote(e, "{}", "m"); err != nil || !ok {
				t.Fatalf("a normal call after it failed: %v %v", ok, err)
			}
		})
	}
}

func TestGuardsAreCatchableRangeErrors(t *testing.T) {
	b := ballot(t, `export function vote() {
		try { "x".repeat(2 ** 30); return false; } catch (e) { return e instanceof RangeError; }
	}`)
	if ok, err := b.Vote(env(MemState{}), "{}", "m"); err != nil || !ok {
		t.Fatalf("%v %v", ok, err)
	}
}

func TestNormalBuiltinsStillWork(t *testing.T) {
	b := ballot(t, `export function vote() {
		const checks = [
			[1, 2, 3].map((x) => x * 2).join("-") === "2-4-6",
			[[1, [2]], 3].flat(Infinity).length === 3,
			[1, 2].concat([3], 4).length === 4,
			"a-b-c".split("-").length === 3,
			"a-b".replace("-", "$&$&") === "a--b",
			"2024-01-02".replace(/(\d+)-(\d+)-(\d+)/, "$3.$2.$1") === "02.01.2024",
			"x".replace(/(?<c>x)/, "[$<c>]") === "[x]",
			"abc".replace("b", "$'$\x60") === "acac",
			"aaa".replaceAll("a", (m, i) => String(i)) === "012",
			"ab".padStart(4, "-") === "--ab",
			"ab".repeat(2) === "abab",
			"a".concat("b", 1) === "ab1",
			JSON.stringify({ b: [1, { c: "d" }], a: null }, null, 2).includes('\n  "b": ['),
			JSON.stringify({ a: 1, b: 2, c: 3 }, ["c", "a"]) === '{"c":3,"a":1}',
			JSON.stringify({ a: 1 }, (k, v) => (typeof v === "number" ? v + 1 : v)) === '{"a":2}',
			JSON.parse('{"__proto__": 1, "a": [true, null, -1.5e3]}').__proto__ === 1,
			JSON.parse('{"a":1,"b":2,"a":3}').a === 3 && Object.keys(JSON.parse('{"a":1,"b":2,"a":3}')).join() === "a,b",
			JSON.parse("[1]", (k, v) => v) instanceof Array,
			String([1, [2, 3]]) === "1,2,3",
			Array.from({ length: 3 }, (_, i) => i).join() === "0,1,2",
			Math.max.apply(null, [1, 5, 2]) === 5,
			new Set([1, 1, 2]).size === 2,
			new Map([["a", 1]]).get("a") === 1,
			new Uint8Array([1, 2]).length === 2,
			Object.keys("abc").length === 3,
			String.raw({ raw: ["a\\n", ""] }, 1) === "a\\n1",
			[..."héllo"].length === 5,
			[3, 1, 2].sort().join() === "1,2,3",
			new Date(2024, 0, 2).toISOString() === "2024-01-02T00:00:00.000Z",
			class extends Date {} !== undefined,
		];
		const failed = checks.map((ok, i) => (ok ? -1 : i)).filter((i) => i >= 0);
		if (failed.length > 0) throw new Error("failed checks " + failed.join());
		return true;
	}`)
	if ok, err := b.Vote(env(MemState{}), "{}", "m"); err != nil || !ok {
		t.Fatalf("%v %v", ok, err)
	}
}

// A call may try to leave something behind in the realm; the next call,
// on the same pooled runtime, must not see it.
func TestCallsAreIsolated(t *testing.T) {
	polluter := ballot(t, `export function vote() {
		// name: [try to change something shared, did it change?]
		const attempts = {
			global: [() => { globalThis.leak = 1; }, () => typeof leak !== "undefined"],
			sloppyGlobal: [() => { Function("leak2 = 1")(); }, () => typeof leak2 !== "undefined"],
			objectProto: [() => { Object.prototype.leak = 1; }, () => "leak" in {}],
			arrayPush: [() => { Array.prototype.push = function () { return 0; }; }, () => [].push(1) === 0],
			mathRandom: [() => { Math.random = () => 0.5; }, () => Math.random() === 0.5],
			dateNow: [() => { Date.now = () => 0; }, () => Date.now() === 0],
			jsonParse: [() => { JSON.parse = () => 1; }, () => JSON.parse("2") === 1],
			gavelKV: [() => { gavel.kv.get = () => "forged"; }, () => gavel.kv.get("gov.none", "x") === "forged"],
			gavelObj: [() => { gavel.extra = 1; }, () => "extra" in gavel],
			console: [() => { console.log = null; }, () => console.log === null],
			protoChain: [() => { Object.setPrototypeOf(Array.prototype, null); }, () => Object.getPrototypeOf(Array.prototype) === null],
			errorName: [() => { Error.prototype.name = "X"; }, () => new Error().name === "X"],
			functionProto: [() => { (function () {}).constructor.prototype.leak = 1; }, () => "leak" in Function.prototype],
			iteratorProto: [() => { Object.getPrototypeOf([][Symbol.iterator]()).next = () => ({ done: true }); }, () => [...[1]].length === 0],
		};
		const succeeded = [];
		for (const [name, [mutate, visible]] of Object.entries(attempts)) {
			try { mutate(); } catch (e) {}
			if (visible()) succeeded.push(name);
		}
		if (succeeded.length > 0) throw new Error("mutated: " + succeeded.join());
		return true;
	}`)
	checker := ballot(t, `export function vote() {
		return typeof leak === "undefined" && typeof leak2 === "undefined" && !("leak" in {}) &&
			[].push(1) === 1 && Math.random() !== 0.5 && Date.now() !== 0 && JSON.parse("2") === 2 &&
			gavel.kv.get("gov.none", "x") === undefined && typeof console.log === "function";
	}`)
	e := env(MemState{})
	for range 3 {
		if ok, err := polluter.Vote(e, "{}", "m"); err != nil || !ok {
			t.Fatalf("polluter: %v %v", ok, err)
		}
		if ok, err := checker.Vote(e, "{}", "m"); err != nil || !ok {
			t.Fatalf("checker saw pollution: %v %v", ok, err)
		}
	}
}

// Overriding an inherited intrinsic property on one's own object still
// works once the intrinsics are frozen (the "override mistake").
func TestOverridesStillWork(t *testing.T) {
	b := ballot(t, `export function vote() {
		class MyError extends Error { constructor(m) { super(m); this.name = "MyError"; } }
		const e = new MyError("x");
		const o = {}; o.toString = () => "custom";
		function F() {} F.prototype.toString = function () { return "F"; };
		return e.name === "MyError" && String(e) === "MyError: x" && String(o) === "custom" && String(new F()) === "F";
	}`)
	if ok, err := b.Vote(env(MemState{}), "{}", "m"); err != nil || !ok {
		t.Fatalf("%v %v", ok, err)
	}
}

func TestModuleStateDoesNotLeak(t *testing.T) {
	// Each resolve answers from state it left behind in an earlier call;
	// with a fresh module instance per call every call answers the same.
	tests := []struct{ name, src string }{
		{"counter", `let n = 0; export function resolve() { n++; return n === 1 ? "Open" : "Accepted"; }`},
		{"closure made at load", `const next = (() => { let n = 0; return () => ++n; })();
			export function resolve() { return next() === 1 ? "Open" : "Accepted"; }`},
		{"map at load", `const seen = new Map(); export function resolve() { seen.set(seen.size, 1); return seen.size === 1 ? "Open" : "Accepted"; }`},
		{"object", `const state = { n: 0 }; export function resolve() { state.n++; return state.n === 1 ? "Open" : "Accepted"; }`},
		{"function property", `export function resolve() { resolve.calls = (resolve.calls || 0) + 1; return resolve.calls === 1 ? "Open" : "Accepted"; }`},
		{"class prototype", `class A {} export function resolve() { const first = new A().x === undefined; A.prototype.x = 1; return first ? "Open" : "Accepted"; }`},
		{"static private field", `class C { static #n = 0; m() { return ++C.#n; } } export function resolve() { return new C().m() === 1 ? "Open" : "Accepted"; }`},
		{"static block", `let log = []; class A { static { log.push(1); } } export function resolve() { log.push(2); return log.length === 2 ? "Open" : "Accepted"; }`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := oneModule(t, tc.src)
			for i := range 4 {
				s, err := c.Resolve(env(MemState{}), "{}", "m", nil, "p")
				if err != nil || s != ProposalOpen {
					t.Fatalf("call %d: %v %v", i, s, err)
				}
			}
		})
	}
}

// describe returns what a script computed, through validate's description.
func describeWith(t *testing.T, expr string) string {
	t.Helper()
	c := oneModule(t, "export function validate() { return { valid: true, description: JSON.stringify("+expr+") }; }")
	r, err := c.Validate(env(MemState{}), "{}")
	if err != nil {
		t.Fatal(err)
	}
	return r.Description
}

func TestDeterministicTimeAndRandom(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"Date.now()", fmt.Sprint(entryTime.UnixMilli())},
		{"new Date().toISOString()", `"2026-03-04T05:06:07.000Z"`},
		{"String(new Date())", `"Wed, 04 Mar 2026 05:06:07 GMT"`},
		{"Date()", `"Wed, 04 Mar 2026 05:06:07 GMT"`},
		{"[new Date().getHours(), new Date().getTimezoneOffset(), new Date().getDate()]", "[5,0,4]"},
		{`new Date("2024-01-02T03:04:05").getTime()`, fmt.Sprint(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli())},
		{`new Date("2024-01-02").getTime()`, fmt.Sprint(time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC).UnixMilli())},
		{`Date.parse("2024-01-02T03:04:05+02:00")`, fmt.Sprint(time.Date(2024, 1, 2, 1, 4, 5, 0, time.UTC).UnixMilli())},
		{`Date.parse("Jan 2 2024")`, "null"}, // NaN: only ISO 8601 is parsed
		{"new Date(2024, 1, 3, 4).toISOString()", `"2024-02-03T04:00:00.000Z"`},
		{"new Date(0).toLocaleString()", `"1970-01-01T00:00:00.000Z"`},
		{"new Date(NaN).toString()", `"Invalid Date"`},
		{"[Math.random(), Math.random()]", "[0.6318934212315656,0.4256744279414296]"},
	}
	for _, tc := range tests {
		for range 2 { // the second run reuses the sandbox and module
			if got := describeWith(t, tc.expr); got != tc.want {
				t.Errorf("%s = %s, want %s", tc.expr, got, tc.want)
			}
		}
	}
}

func TestMissingEntryTime(t *testing.T) {
	_, err := ballot(t, "export function vote() { return true }").Vote(Env{}, "{}", "m")
	if codeOf(err) != CodeMissingEntryTime {
		t.Fatalf("got %v", err)
	}
}

func TestReadOnlyOutsideApply(t *testing.T) {
	c := oneModule(t, `
		export function validate() { gavel.kv.set("gov.x", "k", 1); return { valid: true }; }
		export function resolve() { gavel.kv.delete("gov.x", "k"); return "Open"; }
		export function apply() { gavel.kv.set("ledger.secrets", "k", 1); }`)
	e := env(MemState{})
	if _, err := c.Validate(e, "{}"); codeOf(err) != CodeScriptThrew || !strings.Contains(err.Error(), "only available in apply") {
		t.Fatalf("validate: %v", err)
	}
	if _, err := c.Resolve(e, "{}", "m", nil, "p"); codeOf(err) != CodeScriptThrew || !strings.Contains(err.Error(), "only available in apply") {
		t.Fatalf("resolve: %v", err)
	}
	if _, err := c.Apply(e, "{}", "p"); codeOf(err) != CodeScriptThrew || !strings.Contains(err.Error(), "only tables named gov.*") {
		t.Fatalf("apply: %v", err)
	}
	b := ballot(t, `export function vote() { gavel.kv.set("gov.x", "k", 1); return true; }`)
	if _, err := b.Vote(e, "{}", "m"); codeOf(err) != CodeScriptThrew {
		t.Fatalf("ballot: %v", err)
	}
}

func TestApplyOverlayAndWriteSet(t *testing.T) {
	st := MemState{}
	putJSON(t, st, "gov.t", "a", 1)
	putJSON(t, st, "gov.t", "b", 2)
	putJSON(t, st, "gov.t", "c", 3)
	c := oneModule(t, `export function apply() {
		gavel.kv.set("gov.t", "d", { x: [1, "two"] });
		gavel.kv.delete("gov.t", "b");
		gavel.kv.set("gov.t", "a", 10);
		gavel.kv.set("gov.u", "z", "tmp");
		gavel.kv.delete("gov.u", "z");
		const seen = JSON.stringify([gavel.kv.keys("gov.t"), gavel.kv.entries("gov.t"), gavel.kv.get("gov.t", "b"), gavel.kv.has("gov.t", "d"), gavel.kv.has("gov.u", "z")]);
		if (seen !== '[["a","c","d"],[["a",10],["c",3],["d",{"x":[1,"two"]}]],null,true,false]') throw new Error(seen);
	}`)
	ws, err := c.Apply(env(st), "{}", "p")
	if err != nil {
		t.Fatal(err)
	}
	want := engine.WriteSet{
		{Table: "gov.t", Key: "a", Value: []byte("10")},
		{Table: "gov.t", Key: "b", Delete: true},
		{Table: "gov.t", Key: "d", Value: []byte(`{"x":[1,"two"]}`)},
		{Table: "gov.u", Key: "z", Delete: true},
	}
	if !ws.Equal(want) {
		t.Fatalf("write set %+v, want %+v", ws, want)
	}
	again, err := c.Apply(env(st), "{}", "p")
	if err != nil || !again.Equal(ws) || again.Digest() != ws.Digest() {
		t.Fatalf("apply is not deterministic: %v %v", again, err)
	}
	if st["gov.t"]["b"] == nil {
		t.Fatal("apply changed the state it read")
	}
}

func TestSetRejectsValuesWithoutJSON(t *testing.T) {
	c := oneModule(t, `export function apply() { gavel.kv.set("gov.t", "k", undefined); }`)
	if _, err := c.Apply(env(MemState{}), "{}", "p"); codeOf(err) != CodeScriptThrew || !strings.Contains(err.Error(), "no JSON form") {
		t.Fatalf("got %v", err)
	}
}

type failingState struct{}

func (failingState) Get(string, string) ([]byte, bool, error) {
	return nil, false, errors.New("disk on fire")
}
func (failingState) Range(string, func(string, []byte) bool) error {
	return errors.New("disk on fire")
}

func TestStateErrorsAbortUncatchably(t *testing.T) {
	b := ballot(t, `export function vote() {
		try { gavel.kv.get("gov.t", "k"); } catch (e) { return true; }
		return true;
	}`)
	_, err := b.Vote(env(failingState{}), "{}", "m")
	if codeOf(err) != CodeStateReadFailed || engine.KindOf(err) != engine.KindInternal {
		t.Fatalf("got %v", err)
	}
	c := oneModule(t, `export function resolve() { try { gavel.kv.keys("gov.t"); } finally { return "Open"; } }`)
	if _, err := c.Resolve(env(failingState{}), "{}", "m", nil, "p"); codeOf(err) != CodeStateReadFailed {
		t.Fatalf("got %v", err)
	}
}

func TestResultsAreChecked(t *testing.T) {
	tests := []struct {
		name, src string
		call      func(*Constitution) error
	}{
		{"validate returns a string", `export function validate() { return "yes"; }`, validateCall},
		{"validate without valid", `export function validate() { return { description: "" }; }`, validateCall},
		{"validate with a truthy valid", `export function validate() { return { valid: 1 }; }`, validateCall},
		{"validate with a number description", `export function validate() { return { valid: true, description: 3 }; }`, validateCall},
		{"resolve returns Maybe", `export function resolve() { return "Maybe"; }`, resolveCall},
		{"resolve returns Withdrawn", `export function resolve() { return "Withdrawn"; }`, resolveCall},
		{"resolve returns a String object", `export function resolve() { return new String("Open"); }`, resolveCall},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(oneModule(t, tc.src)); codeOf(err) != CodeScriptBadResult {
				t.Fatalf("got %v, want %s", err, CodeScriptBadResult)
			}
		})
	}
	c := oneModule(t, `export function validate(p) { return { valid: p === "{}", description: "seen " + p }; }`)
	if r, err := c.Validate(env(MemState{}), "{}"); err != nil || r != (ValidateResult{true, "seen {}"}) {
		t.Fatalf("%v %v", r, err)
	}
	getterThrows := oneModule(t, `export function validate() { return { get valid() { throw new Error("getter"); } }; }`)
	if _, err := getterThrows.Validate(env(MemState{}), "{}"); codeOf(err) != CodeScriptThrew {
		t.Fatalf("got %v", err)
	}
}

func validateCall(c *Constitution) error { _, err := c.Validate(env(MemState{}), "{}"); return err }
func resolveCall(c *Constitution) error {
	_, err := c.Resolve(env(MemState{}), "{}", "m", nil, "p")
	return err
}

func TestConsoleIsCapturedAndBounded(t *testing.T) {
	var lines []string
	e := env(MemState{})
	e.Log = func(l string) { lines = append(lines, l) }
	e.Limits.MaxLogBytes = 40
	b := ballot(t, `export function vote() { console.log("hello", 1, { a: 1 }); console.warn("x".repeat(100)); console.error("dropped"); return true; }`)
	if ok, err := b.Vote(e, "{}", "m"); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if len(lines) != 2 || lines[0] != "log: hello 1 [object Object]" || !strings.HasPrefix(lines[1], "warn: xxx") || len(lines[1]) > 40 {
		t.Fatalf("%q", lines)
	}
	e.Log = nil
	if ok, err := b.Vote(e, "{}", "m"); err != nil || !ok {
		t.Fatal(ok, err)
	}
}

func TestHostHelpers(t *testing.T) {
	m := members(t, 1)[0]
	b := ballot(t, `export function vote(cert) {
		const ok = [
			gavel.hash.sha256Hex("") === "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			gavel.pem.certDigestHex(cert) === "`+m.id+`",
			gavel.schema.validate("ballot", { ballot: "x" }) === null,
			gavel.schema.validate("ballot", {}).includes("missing property 'ballot'"),
			gavel.constitution.check("export function validate() {}") !== null,
			gavel.constitution.check("export function validate() {} export function resolve() {} export function apply() {}").startsWith("ConstitutionNotRepairable: "),
			gavel.constitution.check("export function validate() { return { valid: true }; } export function resolve() { return 'Accepted'; } export function apply(p) { gavel.kv.set('gov.constitution', '', JSON.parse(p).actions[0].args.constitution); }") === null,
			gavel.constitution.check("throw new Error('top'); export function validate() {} export function resolve() {} export function apply() {}") === "ConstitutionNotRepairable: the constitution cannot restore the default: validate: ScriptThrew: Error: top",
		];
		let threw = 0;
		for (const f of [() => gavel.pem.certDigestHex("junk"), () => gavel.schema.validate("nope", {}), () => gavel.kv.get(1, "k")]) {
			try { f(); } catch (e) { if (e instanceof TypeError) threw++; }
		}
		return ok.every((x) => x) && threw === 3;
	}`)
	if ok, err := b.Vote(env(MemState{}), m.cert, "m"); err != nil || !ok {
		t.Fatal(ok, err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	ms := members(t, 3)
	c := defaultConstitution(t)
	e := env(stateWithMembers(t, ms))
	// Eight callers on a shared machine: wall-clock budgets stretch when
	// there are more calls than cores (see Limits).
	e.Limits.Timeout = MaxTimeout
	votes := []Vote{{ms[0].id, true}, {ms[1].id, true}}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 200 {
				s, err := c.Resolve(e, "{}", ms[0].id, votes, "p")
				if err != nil || s != ProposalAccepted {
					errs <- fmt.Errorf("%v %v", s, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestDefaultFilesAreEmbedded(t *testing.T) {
	files := scripts.Constitution()
	for _, f := range []string{FileValidate, FileResolve, FileApply, "actions.js", "tables.js"} {
		if files[f] == "" {
			t.Errorf("%s missing", f)
		}
	}
}

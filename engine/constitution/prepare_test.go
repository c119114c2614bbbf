package constitution

import (
	"fmt"
	"strings"
	"testing"
)

// outcome is everything of a call a ledger could record or a budget see.
type outcome struct {
	vote bool
	err  string
	fuel int64
}

func (o outcome) String() string { return fmt.Sprintf("vote=%v err=%q fuel=%d", o.vote, o.err, o.fuel) }

// voteBoth runs a ballot once instantiated inline and once from an
// instance prepared ahead (if its top level allows), each compiled afresh.
func voteBoth(t *testing.T, src string, lim Limits) (inline, prepared outcome, usedPrepared bool) {
	t.Helper()
	drainPreparer() // no earlier request competes for the sandboxes
	defer SetPrepareMode(PrepareAhead)
	st := stateWithMembers(t, members(t, 2))
	vote := func(b *Ballot) outcome {
		e := env(st)
		e.Limits = lim
		var fuel int64
		e.fuelUsed = &fuel
		v, err := b.Vote(e, `{"actions":[]}`, "m")
		o := outcome{vote: v, fuel: fuel}
		if err != nil {
			o.err = codeOf(err) + ": " + err.Error()
		}
		return o
	}
	SetPrepareMode(PrepareNever)
	inline = vote(ballot(t, src+"\n// inline: "+t.Name()))
	SetPrepareMode(prepareByHand)
	b := ballot(t, src+"\n// prepared: "+t.Name())
	prepareOne(prepareRequest{mod: b.mod, limits: lim.withDefaults()})
	before := preparedCalls.Load()
	prepared = vote(b)
	return inline, prepared, preparedCalls.Load() > before
}

// TestPreparedInstanceIsTheInlineOne: a call from an instance prepared
// ahead has the outcome and fuel of one that instantiates inline, even
// when the module's top level captures its own stack; a top level that
// reaches what a call supplies is never prepared.
func TestPreparedInstanceIsTheInlineOne(t *testing.T) {
	for _, c := range []struct {
		name, src  string
		preparable bool
	}{
		{"plain", `export function vote() { return true; }`, true},
		{"top-level work", `let n = 0; for (let i = 0; i < 3000; i++) n += i;
			export function vote() { for (let i = 0; i < 100; i++) n++; return n === 4498600; }`, true},
		{"module state is per call", `let calls = 0; export function vote() { calls++; return calls === 1; }`, true},
		{"stack at load", `const s = new Error("load").stack;
			export function vote() { throw new Error(s); }`, true},
		{"stack in the call", `export function vote() { throw new Error(new Error("call").stack); }`, true},
		{"exports nothing callable", `export const vote = 1;`, true},
		{"time at load", `const t = Date.now(); export function vote() { return t > 0; }`, false},
		{"state at load", `const n = gavel.kv.keys("gov.members").length; export function vote() { return n === 2; }`, false},
		{"random at load", `const r = Math.random(); export function vote() { return r !== Math.random(); }`, false},
		{"console at load", `console.log("loaded"); export function vote() { return true; }`, false},
		{"throws at load", `throw new Error("no"); export function vote() { return true; }`, false},
		{"catches the stop at load", `let ok = true; try { Date.now(); } catch (e) { ok = false; } export function vote() { return ok; }`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			inline, prepared, used := voteBoth(t, c.src, Limits{Timeout: MaxTimeout})
			if inline != prepared {
				t.Fatalf("inline %v, prepared %v", inline, prepared)
			}
			if used != c.preparable {
				t.Fatalf("used a prepared instance: %v, want %v (%v)", used, c.preparable, inline)
			}
			if strings.Contains(c.name, "stack") && !strings.Contains(inline.err, "at ") {
				t.Fatalf("the stack is not in the outcome: %v", inline)
			}
		})
	}
}

// TestPreparedFuelAtTheBoundary: with the budget at exactly the fuel a
// ballot needs it passes, one less and it fails in the call, the same with
// a prepared instance (its top level's fuel charged first); a budget its
// top level overruns is never prepared; an instance prepared under
// another budget is not used.
func TestPreparedFuelAtTheBoundary(t *testing.T) {
	src := `let n = 0; for (let i = 0; i < 2000; i++) n++; export function vote() { for (let i = 0; i < 10; i++) n++; return n === 2010; }`
	lim := Limits{Timeout: MaxTimeout}
	inline, _, _ := voteBoth(t, src, lim)
	if inline.err != "" {
		t.Fatal(inline)
	}
	for _, c := range []struct {
		fuel     int64
		ok, used bool
	}{{inline.fuel, true, true}, {inline.fuel - 1, false, true}, {1000, false, false}} {
		t.Run(fmt.Sprint(c.fuel), func(t *testing.T) {
			lim.MaxFuel = c.fuel
			in, pre, used := voteBoth(t, src, lim)
			if in != pre || (in.err == "") != c.ok || used != c.used {
				t.Fatalf("inline %v, prepared %v (used %v); want ok=%v used=%v", in, pre, used, c.ok, c.used)
			}
		})
	}
	// A prepared instance serves only its own budget.
	drainPreparer()
	SetPrepareMode(prepareByHand)
	defer SetPrepareMode(PrepareAhead)
	b := ballot(t, src+"\n// other budget")
	prepareOne(prepareRequest{mod: b.mod, limits: Limits{MaxFuel: inline.fuel + 1}.withDefaults()})
	before := preparedCalls.Load()
	e := env(MemState{})
	e.Limits.MaxFuel = inline.fuel + 2
	if _, err := b.Vote(e, `{}`, "m"); err != nil {
		t.Fatal(err)
	}
	if preparedCalls.Load() != before {
		t.Fatal("an instance prepared under another budget was used")
	}
}

// TestPreparedAhead: in the default mode, the background preparer keeps
// an instance ready for the next call of a module.
func TestPreparedAhead(t *testing.T) {
	SetPrepareMode(PrepareAhead)
	b := ballot(t, `export function vote() { return true; } // ahead`)
	before := preparedCalls.Load()
	for range 3 {
		if _, err := b.Vote(env(MemState{}), `{}`, "m"); err != nil {
			t.Fatal(err)
		}
		drainPreparer()
	}
	if n := preparedCalls.Load() - before; n != 2 {
		t.Fatalf("%d of the 2 later calls used a prepared instance", n)
	}
}

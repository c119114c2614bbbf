package constitution

import (
	"maps"
	"testing"

	"github.com/gavelhq/gavel/engine"
)

// TestVoteObserved checks what a ballot's observation records: which
// changes of the state make Unchanged false, and which ballots cannot be
// reused at all.
func TestVoteObserved(t *testing.T) {
	ms := members(t, 2)
	base := stateWithMembers(t, ms)
	putJSON(t, base, TableJoinPolicy, "", "p")
	change := map[string]func(MemState){
		"nothing":          func(MemState) {},
		"unread table":     func(st MemState) { putJSON(t, st, TableSNPMeasurements, "m", "AllowedToJoin") },
		"read value":       func(st MemState) { putJSON(t, st, TableJoinPolicy, "", "q") },
		"read key removed": func(st MemState) { st.Apply(engine.WriteSet{{Table: TableJoinPolicy, Key: "", Delete: true}}) },
		"listed table":     func(st MemState) { putJSON(t, st, TableMembers, "zz", map[string]any{"status": "Accepted"}) },
		"absent key added": func(st MemState) { putJSON(t, st, TableSNPHostData, "h", map[string]any{}) },
	}
	for _, c := range []struct {
		name, src string
		reusable  bool
		readNone  bool
		stale     []string // changes after which Unchanged is false
	}{
		{"reads nothing", `export function vote() { return true; }`, true, true, nil},
		{"get", `export function vote() { return gavel.kv.get("gov.nodes.join_policy", "") === "p"; }`, true, false,
			[]string{"read value", "read key removed"}},
		{"has of an absent key", `export function vote() { return !gavel.kv.has("gov.nodes.snp.host_data", "h"); }`, true, false,
			[]string{"absent key added"}},
		{"entries", `export function vote() { return gavel.kv.entries("gov.members").length === 2; }`, true, false,
			[]string{"listed table"}},
		{"many reads of one key", `export function vote() { for (let i = 0; i < 1000; i++) gavel.kv.get("gov.nodes.join_policy", ""); return true; }`, true, false,
			[]string{"read value", "read key removed"}},
		{"too many keys", `export function vote() { for (let i = 0; i < 1000; i++) gavel.kv.get("gov.members", "k" + i); return true; }`, false, false, nil},
		{"too long a key", `export function vote() { gavel.kv.get("gov.members", "k".repeat(20000)); return true; }`, false, false, nil},
		{"time", `export function vote() { return Date.now() > 0; }`, false, true, nil},
		{"console", `export function vote() { console.log("x"); return true; }`, false, true, nil},
		{"budget failure", `export function vote() { gavel.kv.get("gov.nodes.join_policy", ""); while (true) {} }`, true, false,
			[]string{"read value", "read key removed"}},
		{"nested check reads members", "export function vote() { return gavel.constitution.check(" + "`" + `export function validate() { return { valid: true }; }
			export function resolve() { return "Accepted"; }
			export function apply(p) { gavel.kv.set("gov.constitution", "", JSON.parse(p).actions[0].args.constitution); }` + "`" + ") === null; }", true, false,
			[]string{"listed table"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, obs, err := ballot(t, c.src).VoteObserved(env(base), `{"actions":[]}`, ms[0].id)
			if err != nil && engine.KindOf(err) != engine.KindInvalid {
				t.Fatal(err)
			}
			if obs.Reusable() != c.reusable {
				t.Fatalf("reusable %v, want %v", obs.Reusable(), c.reusable)
			}
			if !c.reusable {
				return
			}
			if obs.ReadNothing() != c.readNone {
				t.Fatalf("read nothing %v, want %v", obs.ReadNothing(), c.readNone)
			}
			for name, f := range change {
				st := MemState{}
				for table, rows := range base {
					st[table] = maps.Clone(rows)
				}
				f(st)
				same, err := obs.Unchanged(st)
				if err != nil {
					t.Fatal(err)
				}
				stale := false
				for _, s := range c.stale {
					stale = stale || s == name
				}
				if same == stale {
					t.Errorf("after %q: unchanged %v, want %v", name, same, !stale)
				}
			}
		})
	}
}

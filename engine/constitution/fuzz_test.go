package constitution

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gavelhq/gavel/engine"
)

// FuzzCompileBallot: any source either fails to compile with a typed error
// or compiles to a ballot whose vote ends, under tight limits, in a boolean
// or a typed error — never a panic or a hang.
func FuzzCompileBallot(f *testing.F) {
	f.Add("export function vote(p, id) { return true; }")
	f.Add("export function vote() { for (;;) {} }")
	f.Add("export function vote() { return gavel.kv.get('gov.members', 'x') === undefined; }")
	f.Add("import x from './x.js'; export function vote() {}")
	f.Add("export const vote = () => JSON.parse('[1,2]').length === 2;")
	e := env(MemState{})
	e.Limits = Limits{Timeout: 20 * time.Millisecond, MaxHeapGrowth: 16 << 20}
	f.Fuzz(func(t *testing.T, src string) {
		b, err := CompileBallot(src)
		if err != nil {
			if codeOf(err) != CodeBallotCompileError {
				t.Fatalf("compile error is %v", err)
			}
			return
		}
		_, err = b.Vote(e, `{"actions":[]}`, "m")
		var typed *engine.Error
		if err != nil && !errors.As(err, &typed) {
			t.Fatalf("untyped error %v", err)
		}
	})
}

// FuzzJSONParse checks the JSON parser against encoding/json: the same texts
// are valid, and valid texts give the same values.
func FuzzJSONParse(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,-0,true,false,null],"b":"\u00e9\ud83d\ude00\n"}`, `[`, `{"a":1,"a":2}`, `"\ud800"`, ` 1 `, `01`, `1.`, `{"__proto__":{}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		n, err := parseJSON(text)
		valid := json.Valid([]byte(text))
		if valid != (err == nil) && !(valid && err != nil && depthOver(text)) {
			t.Fatalf("parse(%q): err %v, encoding/json valid %v", text, err, valid)
		}
		if err != nil {
			return
		}
		var want any
		if json.Unmarshal([]byte(text), &want) != nil {
			return // e.g. a number beyond float64, which JSON.parse reads as Infinity
		}
		if got := toGo(n); !reflect.DeepEqual(got, want) {
			t.Fatalf("parse(%q) = %#v, encoding/json %#v", text, got, want)
		}
	})
}

func depthOver(text string) bool { return jsonDepth(text) > jsonHardDepth }

// toGo converts a parsed node the way encoding/json decodes into any,
// invalid UTF-8 bytes included.
func toGo(n *jsonNode) any {
	switch n.kind {
	case 'o':
		m := map[string]any{}
		for i, k := range n.keys {
			m[fixUTF8(k)] = toGo(n.items[i])
		}
		return m
	case 'a':
		a := []any{}
		for _, it := range n.items {
			a = append(a, toGo(it))
		}
		return a
	case 's':
		return fixUTF8(n.str)
	case 'n':
		if math.IsInf(n.num, 0) {
			return nil
		}
		return n.num
	case 't':
		return true
	case 'f':
		return false
	}
	return nil
}

func fixUTF8(s string) string {
	out := make([]rune, 0, len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		out = append(out, r)
		i += size
	}
	return string(out)
}

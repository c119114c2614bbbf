package audit

import (
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/gov"
)

func TestLegacySafetyOutcome(t *testing.T) {
	tests := []struct{ record, want string }{
		{`{"failure":{"reason":"resolve: ScriptTimeout: script exceeded its time budget of 1s"}}`, "ScriptTimeout"},
		{`{"vote_failures":{"m":{"reason":"ScriptMemoryLimit: script grew the heap by more than 134217728 bytes"}}}`, "ScriptMemoryLimit"},
		{`{"vote_failures":{"m":{"reason":"ScriptBudgetExceeded: script exceeded its budget of 1000000 steps"}}}`, ""},
		{`{"failure":{"reason":"apply: ScriptThrew: Error: ScriptTimeout"}}`, ""},
		{`{"failure":null}`, ""},
	}
	for _, tc := range tests {
		ws := engine.WriteSet{{Table: gov.TableProposals, Key: "p", Value: []byte(tc.record)}}
		if got := legacySafetyOutcome(ws); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.record, got, tc.want)
		}
	}
}

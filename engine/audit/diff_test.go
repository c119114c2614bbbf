package audit

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gavelhq/gavel/engine"
)

func TestDiffWrites(t *testing.T) {
	big := bytes.Repeat([]byte{0xab}, 10000)
	changed := bytes.Clone(big)
	changed[5000] = 0xcd
	w := func(table, key string, v []byte) engine.Write { return engine.Write{Table: table, Key: key, Value: v} }
	for _, tc := range []struct {
		name                 string
		recorded, recomputed engine.WriteSet
		what, table, key     string
		want                 []string // in the message
	}{
		{"value differs", engine.WriteSet{w("t", "k", big)}, engine.WriteSet{w("t", "k", changed)}, "differs", "t", "k",
			[]string{`t/"k"`, "10000 bytes", "first difference at byte 5000", "…abababababababab", "cdabab"}},
		{"only recorded", engine.WriteSet{w("t", "k", big)}, nil, "only recorded", "t", "k", []string{"recorded but not re-executed"}},
		{"only re-executed", nil, engine.WriteSet{w("t", "k", big)}, "only re-executed", "t", "k", []string{"only by re-execution"}},
		{"other key", engine.WriteSet{w("t", "a", nil)}, engine.WriteSet{w("u", "b", nil)}, "other key", "t", "a", []string{`u/"b"`}},
		{"first byte, short values", engine.WriteSet{w("t", "k", []byte{1})}, engine.WriteSet{w("t", "k", []byte{2, 3})}, "differs", "t", "k",
			[]string{"recorded 1 bytes, re-executed 2 bytes, first difference at byte 0: recorded 01, re-executed 0203"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := diffWrites(tc.recorded, tc.recomputed)
			var m *WriteSetMismatch
			if !errors.As(err, &m) || m.What != tc.what || m.Table != tc.table || m.Key != tc.key {
				t.Fatalf("%#v", err)
			}
			msg := err.Error()
			if len(msg) > 300 {
				t.Errorf("message of %d bytes: %s", len(msg), msg)
			}
			for _, s := range tc.want {
				if !strings.Contains(msg, s) {
					t.Errorf("%q does not say %q", msg, s)
				}
			}
		})
	}
	if err := diffWrites(engine.WriteSet{w("t", "k", big)}, engine.WriteSet{w("t", "k", big)}); errors.As(err, new(*WriteSetMismatch)) {
		t.Fatalf("equal write sets: %v", err)
	}
}

package fold_test

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/fold"
	"github.com/gavelhq/gavel/engine/merkle"
)

// tables is a MemState as a fold's tables.
type tables struct{ constitution.MemState }

func (t tables) Set(table, key string, v []byte) error {
	t.Apply(engine.WriteSet{{Table: table, Key: key, Value: v}})
	return nil
}

func (t tables) Delete(table, key string) error {
	t.Apply(engine.WriteSet{{Table: table, Key: key, Delete: true}})
	return nil
}

func entry(kind engine.EntryKind, view, seqno uint64, ms int64, ws engine.WriteSet) *engine.Entry {
	e := &engine.Entry{Kind: kind, View: view, Seqno: seqno, TimeMillis: ms, Writes: ws}
	e.Seal()
	return e
}

func TestApply(t *testing.T) {
	put := func(k, v string) engine.Write { return engine.Write{Table: "t", Key: k, Value: []byte(v)} }
	del := func(k string) engine.Write { return engine.Write{Table: "t", Key: k, Delete: true} }
	sig := engine.WriteSet{{Table: engine.TableSignatures, Value: []byte("cose")}}
	for _, tc := range []struct {
		name    string
		entries []*engine.Entry
		want    fold.Position
		keys    map[string]string // table t afterwards
		err     error             // of the last entry
	}{
		{"one write", []*engine.Entry{entry(engine.KindStatement, 1, 1, 10, engine.WriteSet{put("a", "1")})},
			fold.Position{Seqno: 1, View: 1, TimeMillis: 10}, map[string]string{"a": "1"}, nil},
		{"delete", []*engine.Entry{
			entry(engine.KindStatement, 1, 1, 10, engine.WriteSet{put("a", "1"), put("b", "2")}),
			entry(engine.KindStatement, 2, 2, 11, engine.WriteSet{del("a")})},
			fold.Position{Seqno: 2, View: 2, TimeMillis: 11}, map[string]string{"b": "2"}, nil},
		{"signature", []*engine.Entry{
			entry(engine.KindStatement, 1, 1, 10, engine.WriteSet{put("a", "1")}),
			entry(engine.KindSignature, 1, 2, 10, sig)},
			fold.Position{Seqno: 2, View: 1, TimeMillis: 10, LastSignature: 2}, map[string]string{"a": "1"}, nil},
		{"void: counted, no writes", []*engine.Entry{
			entry(engine.KindStatement, 1, 1, 10, engine.WriteSet{put("a", "1")}),
			func() *engine.Entry {
				e := engine.VoidEntry(2, 1, 10, errors.New("forged"))
				e.Writes = engine.WriteSet{put("a", "forged")} // never applied
				return e
			}()},
			fold.Position{Seqno: 2, View: 1, TimeMillis: 10, Voids: 1, LastVoid: fold.Void{Seqno: 2, Reason: "forged"}}, map[string]string{"a": "1"}, nil},
		{"gap", []*engine.Entry{entry(engine.KindStatement, 1, 2, 10, engine.WriteSet{put("a", "1")})},
			fold.Position{}, map[string]string{}, fold.ErrGap},
		{"signature without one", []*engine.Entry{entry(engine.KindSignature, 1, 1, 10, engine.WriteSet{put("a", "1")})},
			fold.Position{}, map[string]string{}, errors.New("no signature")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pos fold.Position
			tree := merkle.New()
			tree.Append(engine.Digest{}, nil)
			want := merkle.New()
			want.Append(engine.Digest{}, nil)
			st := tables{constitution.MemState{}}
			var err error
			for _, e := range tc.entries {
				if err = fold.Apply(&pos, tree, st, e, nil); err != nil {
					break
				}
				want.Append(e.Leaf(), nil)
			}
			switch {
			case tc.err == nil && err != nil:
				t.Fatal(err)
			case tc.err != nil && err == nil:
				t.Fatalf("folded, want an error like %v", tc.err)
			case errors.Is(tc.err, fold.ErrGap) && !errors.Is(err, fold.ErrGap):
				t.Fatalf("got %v, want ErrGap", err)
			}
			if pos != tc.want {
				t.Fatalf("position %+v, want %+v", pos, tc.want)
			}
			if tree.Root() != want.Root() || tree.Size() != pos.Seqno+1 {
				t.Fatalf("tree of %d leaves, position at %d", tree.Size(), pos.Seqno)
			}
			got := map[string]string{}
			for k, v := range st.MemState["t"] {
				got[k] = string(v)
			}
			if len(got) != len(tc.keys) {
				t.Fatalf("table %v, want %v", got, tc.keys)
			}
			for k, v := range tc.keys {
				if got[k] != v {
					t.Fatalf("table %v, want %v", got, tc.keys)
				}
			}
		})
	}
}

// The position is stored as the state store's meta record: its encoding is
// pinned to what builds before the fold existed wrote (state.Meta), so a
// data folder of an older build opens.
func TestPositionEncodingIsPinned(t *testing.T) {
	for _, tc := range []struct {
		pos fold.Position
		hex string
	}{
		{fold.Position{}, "a40100020003000400"},
		{fold.Position{Seqno: 7, View: 2, TimeMillis: 1700000000123, LastSignature: 5, Voids: 1, LastVoid: fold.Void{Seqno: 6, Reason: "forged"}},
			"a601070202031b0000018bcfe5687b0405050106a201060266666f72676564"},
	} {
		b, err := engine.CBOR.Marshal(&tc.pos)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b); got != tc.hex {
			t.Fatalf("%+v encodes as %s, want %s", tc.pos, got, tc.hex)
		}
		var back fold.Position
		if err := engine.CBORDecode.Unmarshal(b, &back); err != nil || back != tc.pos {
			t.Fatalf("decodes as %+v (%v)", back, err)
		}
	}
}

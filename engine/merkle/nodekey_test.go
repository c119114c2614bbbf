package merkle

import (
	"bytes"
	"cmp"
	"math"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/transparency-dev/merkle/compact"
)

func TestNodeKey(t *testing.T) {
	tests := []struct {
		id   compact.NodeID
		want string
	}{
		{compact.NewNodeID(0, 0), "\x00\x00\x00\x00\x00\x00\x00\x00\x00"},
		{compact.NewNodeID(0, 1), "\x00\x00\x00\x00\x00\x00\x00\x00\x01"},
		{compact.NewNodeID(3, 0x0102), "\x03\x00\x00\x00\x00\x00\x00\x01\x02"},
		{compact.NewNodeID(0, math.MaxUint64), "\x00\xff\xff\xff\xff\xff\xff\xff\xff"},
		{compact.NewNodeID(63, 1), "\x3f\x00\x00\x00\x00\x00\x00\x00\x01"},
	}
	for _, tc := range tests {
		got := NodeKey(tc.id)
		if string(got) != tc.want {
			t.Errorf("NodeKey(%+v) = %x, want %x", tc.id, got, tc.want)
		}
		back, err := ParseNodeKey(got)
		if err != nil || back != tc.id {
			t.Errorf("ParseNodeKey(%x) = %+v, %v; want %+v", got, back, err, tc.id)
		}
	}
}

func TestNodeKeyOrderIsLevelThenIndex(t *testing.T) {
	ids := []compact.NodeID{
		compact.NewNodeID(0, 0), compact.NewNodeID(0, 255), compact.NewNodeID(0, 256),
		compact.NewNodeID(0, 1<<40), compact.NewNodeID(1, 0), compact.NewNodeID(1, 7),
		compact.NewNodeID(2, 1), compact.NewNodeID(20, 3), compact.NewNodeID(63, 0),
	}
	for _, a := range ids {
		for _, b := range ids {
			want := cmp.Or(cmp.Compare(a.Level, b.Level), cmp.Compare(a.Index, b.Index))
			if got := bytes.Compare(NodeKey(a), NodeKey(b)); got != want {
				t.Errorf("compare %+v %+v = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestParseNodeKeyRefuses(t *testing.T) {
	tests := map[string]string{
		"empty":              "",
		"short":              "\x00\x00\x00\x00\x00\x00\x00\x00",
		"long":               "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
		"level 64":           "\x40\x00\x00\x00\x00\x00\x00\x00\x00",
		"level 63 index 2":   "\x3f\x00\x00\x00\x00\x00\x00\x00\x02",
		"level 1 index 2^63": "\x01\x80\x00\x00\x00\x00\x00\x00\x00",
	}
	for name, key := range tests {
		_, err := ParseNodeKey([]byte(key))
		if e := engine.AsError(err); err == nil || e.Code != "InvalidNodeKey" || e.Kind != engine.KindInvalid {
			t.Errorf("%s: err = %v, want InvalidNodeKey", name, err)
		}
	}
}

func FuzzParseNodeKey(f *testing.F) {
	f.Add(NodeKey(compact.NewNodeID(0, 0)))
	f.Add(NodeKey(compact.NewNodeID(5, 12345)))
	f.Add([]byte("\x40\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, key []byte) {
		id, err := ParseNodeKey(key)
		if err != nil {
			if engine.AsError(err).Code != "InvalidNodeKey" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// A key that parses names a real node and is the one encoding of it.
		if id.Level > 63 || (id.Level > 0 && id.Index>>(64-id.Level) != 0) {
			t.Fatalf("parsed impossible node %+v", id)
		}
		if !bytes.Equal(NodeKey(id), key) {
			t.Fatalf("key %x parses to %+v, which encodes to %x", key, id, NodeKey(id))
		}
	})
}

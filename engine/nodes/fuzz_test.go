package nodes_test

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/nodes"
)

// FuzzParseJoin: any bytes are refused with a typed error or parse into a
// join whose node id is its key's.
func FuzzParseJoin(f *testing.F) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	raw, err := nodes.SignJoin(key, nodes.JoinRequest{Role: "participant", Address: "h:1", Attestation: json.RawMessage(`{"format":"virtual"}`)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := nodes.ParseJoin(b)
		if err != nil {
			if engine.AsError(err).Code == "InternalError" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if j.NodeID != engine.NodeID(j.PublicKey) {
			t.Fatal("node id is not the key's")
		}
	})
}

package replica

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/gavelhq/gavel/engine"
)

// The forwarded write and its answer survive the wire, with the signed
// request as a byte string under the JSON field names.
func TestForwardWireRoundTrip(t *testing.T) {
	req := forwardRequest{Op: opGov, Type: "ballot", ProposalID: "p1", MemberID: "m1", Body: []byte{0xd2, 0x84, 0, 1, 2}, After: 7}
	b, err := engine.CBOR.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("proposal_id")) || !bytes.Contains(b, []byte{0x45, 0xd2, 0x84, 0, 1, 2}) {
		t.Fatalf("not the wire form: %x", b)
	}
	var back forwardRequest
	if err := engine.CBORDecode.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, req) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	a := forwardAnswer{Body: []byte(`{"txid":"2.9"}`), TxID: engine.TxID{View: 2, Seqno: 9},
		Error: &wireError{Kind: engine.KindConflict, Code: "X", Message: "m", Details: []engine.ErrorDetail{{Code: "c", Message: "d"}}}}
	if b, err = engine.CBOR.Marshal(a); err != nil {
		t.Fatal(err)
	}
	var aback forwardAnswer
	if err := engine.CBORDecode.Unmarshal(b, &aback); err != nil || !reflect.DeepEqual(aback, a) {
		t.Fatalf("answer round trip: %+v, %v", aback, err)
	}
}

// A forwarded write that does not decode is refused, never a panic, and
// one that decodes has one encoding (decode ∘ encode is the identity on it).
func FuzzForwardRequest(f *testing.F) {
	seed, _ := engine.CBOR.Marshal(forwardRequest{Op: opStatement, Body: []byte("x")})
	f.Add(seed)
	f.Add([]byte{0xa1, 0x62, 'o', 'p', 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte(`{"op":"statement"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req forwardRequest
		if engine.CBORDecode.Unmarshal(b, &req) != nil {
			return
		}
		again, err := engine.CBOR.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var back forwardRequest
		if err := engine.CBORDecode.Unmarshal(again, &back); err != nil {
			t.Fatalf("%x does not decode: %v", again, err)
		}
		if third, _ := engine.CBOR.Marshal(back); !bytes.Equal(third, again) {
			t.Fatalf("%+v does not survive a round trip: %+v", req, back)
		}
	})
}

package handlers_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/handlers"
)

// FuzzNATSStatement sends arbitrary bodies to gavel.submit.statement as a
// client would: every answer carries a Gavel-Status, a refusal is a 4xx
// with a JSON error body, and only a statement that verifies becomes a
// statement entry.
func FuzzNATSStatement(f *testing.F) {
	fx := newFixture(f, fastSignatures())
	nc := fx.natsClient(f)

	good := fx.sign("fuzz/nats", []byte("seed"))
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40})
	f.Add([]byte("not cose"))
	f.Add([]byte{})

	// checked is the last seqno whose leaf was looked at; acked holds the
	// seqnos of new entries the service acknowledged since (an identical
	// statement sent again is answered with its first txid, no new entry).
	checked := fx.r.Store().Meta().Seqno
	acked := map[uint64]bool{}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := nc.Request(handlers.SubjectStatement, body, 30*time.Second)
		if err != nil {
			t.Fatalf("no answer for %x: %v", body, err)
		}
		status, err := strconv.Atoi(m.Header.Get(handlers.StatusHeader))
		if err != nil {
			t.Fatalf("answer without %s header for %x: %v", handlers.StatusHeader, body, m.Header)
		}
		if status == 201 {
			// Only a statement that really verifies may land.
			st, err := cose.ParseStatement(body)
			if err != nil || cose.VerifyStatement(st, time.Now()) != nil {
				t.Fatalf("accepted an invalid statement %x", body)
			}
			var res struct{ TxID string }
			if json.Unmarshal(m.Data, &res) != nil {
				t.Fatalf("201 without a txid: %s", m.Data)
			}
			tx, err := engine.ParseTxID(res.TxID)
			if err != nil {
				t.Fatalf("201 with txid %q: %v", res.TxID, err)
			}
			if tx.Seqno > checked {
				acked[tx.Seqno] = true
			}
		} else {
			if status < 400 || status >= 500 {
				t.Fatalf("status %d for %x: %s", status, body, m.Data)
			}
			var eb handlers.ErrorBody
			if err := json.Unmarshal(m.Data, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("status %d with a body that is not a JSON error: %q", status, m.Data)
			}
		}
		// Every statement entry since the last look must be an acknowledged
		// one; signature entries land on their own timer and do not count.
		now := fx.r.Store().Meta().Seqno
		for seq := checked + 1; seq <= now; seq++ {
			rec, ok, err := fx.r.Store().Leaf(seq)
			if err != nil || !ok {
				t.Fatalf("leaf %d: %v %v", seq, ok, err)
			}
			if rec.Kind == engine.KindStatement && !acked[seq] {
				t.Fatalf("statement entry %d was never acknowledged (last body %x)", seq, body)
			}
			delete(acked, seq)
		}
		checked = now
		if len(acked) != 0 {
			t.Fatalf("acknowledged seqnos %v are not in the ledger (at %d)", acked, now)
		}
	})
}

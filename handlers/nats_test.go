package handlers_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/handlers"
)

func TestNATSSubmitStatement(t *testing.T) {
	f := newFixture(t, fastSignatures())
	nc := f.natsClient(t)

	request := func(body []byte) (int, []byte) {
		t.Helper()
		m, err := nc.Request(handlers.SubjectStatement, body, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		status, err := strconv.Atoi(m.Header.Get(handlers.StatusHeader))
		if err != nil {
			t.Fatalf("no status header: %v", m.Header)
		}
		return status, m.Data
	}
	status, body := request(f.sign("nats/1", []byte("over nats")))
	var res struct{ TxID string }
	if status != 201 || json.Unmarshal(body, &res) != nil {
		t.Fatalf("register over NATS: %d %s", status, body)
	}
	if _, err := engine.ParseTxID(res.TxID); err != nil {
		t.Fatal(err)
	}
	f.waitCOSE("/receipt?transaction_id=" + res.TxID)

	before := f.r.Store().Meta().Seqno
	for _, tc := range []struct {
		body   []byte
		status int
		code   string
	}{
		{[]byte("not cose"), 400, "InvalidStatement"},
		{nil, 400, "EmptyBody"},
		{make([]byte, handlers.DefaultLimits().MaxStatementBytes+1), 413, "RequestTooLarge"},
	} {
		status, body := request(tc.body)
		var eb handlers.ErrorBody
		if status != tc.status || json.Unmarshal(body, &eb) != nil || eb.Error.Code != tc.code {
			t.Fatalf("got %d %s, want %d %s", status, body, tc.status, tc.code)
		}
	}
	// The client user may not write the ledger itself.
	if _, err := nc.Request("gavel.ledger.statement", []byte("forged"), time.Second); err == nil {
		t.Fatal("client published to the ledger")
	}
	for s := before + 1; s <= f.r.Store().Meta().Seqno; s++ {
		if rec, _, _ := f.r.Store().Leaf(s); rec.Kind != engine.KindSignature {
			t.Fatalf("a rejected request wrote a %s entry", rec.Kind)
		}
	}
}

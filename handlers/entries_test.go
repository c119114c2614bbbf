package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/receipt"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/handlers"
)

// TestOperationRunningUntilSigned: with no signature yet, the operation of
// a registration is running (202), as scitt-ccf-ledger's is until commit.
func TestOperationRunningUntilSigned(t *testing.T) {
	cfg := sequencer.DefaultConfig()
	cfg.SignEvery, cfg.SignInterval = 1_000_000, time.Hour
	f := newFixture(t, cfg)
	id := f.register(f.sign("pending", []byte("x")))
	status, h, body := f.do("GET", "/operations/"+id, "", nil)
	var op handlers.Operation
	if status != http.StatusAccepted || engine.CBORDecode.Unmarshal(body, &op) != nil || op.Status != handlers.OperationRunning || op.EntryID != "" || h.Get("Retry-After") == "" {
		t.Fatalf("running operation: %d %+v %x", status, op, body)
	}
	status, _, body = f.do("GET", "/node/tx?transaction_id="+id, "", nil)
	if status != 200 || !strings.Contains(string(body), `"status":"Committed"`) {
		t.Fatalf("/node/tx: %d %s", status, body)
	}
}

func TestOperationsAndEntries(t *testing.T) {
	f := newFixture(t, fastSignatures())
	ctx := context.Background()
	c := client.New(f.url)
	st := f.sign("demo/op", []byte("hello"))
	tx, err := c.RegisterAndWait(ctx, st, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	status, h, body := f.do("GET", "/operations/"+tx, "", nil)
	var op handlers.Operation
	if status != 200 || engine.CBORDecode.Unmarshal(body, &op) != nil || op.Status != handlers.OperationSucceeded || op.EntryID != tx || h.Get("Location") != "/entries/"+tx {
		t.Fatalf("succeeded operation: %d %+v %v", status, op, h)
	}
	rc, err := c.Receipt(ctx, tx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := receipt.Verify(rc, f.r.Identity().Cert.PublicKey); err != nil {
		t.Fatalf("GET /entries/%s: %v", tx, err)
	}
	ptx, _ := engine.ParseTxID(tx)
	genesis := engine.TxID{View: ptx.View, Seqno: 1}.String()
	for _, tc := range []struct {
		id     string
		status int
		code   string
	}{
		{"9.99999", 404, "NotFound"},
		{genesis, 404, "NotFound"},
		{"nope", 400, "InvalidInput"},
		{"1.0", 400, "InvalidInput"},
	} {
		before := f.r.Store().Meta().Seqno
		status, _, body := f.do("GET", "/operations/"+tc.id, "", nil)
		var eb handlers.ErrorBody
		if status != tc.status || json.Unmarshal(body, &eb) != nil || eb.Error.Code != tc.code {
			t.Errorf("operation %s: %d %s, want %d %s", tc.id, status, body, tc.status, tc.code)
		}
		if f.r.Store().Meta().Seqno < before {
			t.Fatal("the ledger went back")
		}
	}
	var commit struct {
		TransactionID string `json:"transaction_id"`
	}
	status, _, body = f.do("GET", "/node/commit", "", nil)
	if status != 200 || json.Unmarshal(body, &commit) != nil || commit.TransactionID == "" {
		t.Fatalf("/node/commit %d %s", status, body)
	}
	other := engine.TxID{View: ptx.View + 1, Seqno: 1}.String()
	for q, want := range map[string]string{tx: "Committed", genesis: "Committed", other: "Invalid", "99.99999999": "Unknown"} {
		status, _, body := f.do("GET", "/node/tx?transaction_id="+q, "", nil)
		if status != 200 || !strings.Contains(string(body), `"status":"`+want+`"`) {
			t.Errorf("/node/tx %s: %d %s, want %s", q, status, body, want)
		}
	}
	n, err := c.Network(ctx)
	if err != nil || len(n.PrimaryID) != 64 || string(n.ServiceData) != "null" || n.RecoveryCount != 0 {
		t.Fatalf("network %+v %v", n, err)
	}
}

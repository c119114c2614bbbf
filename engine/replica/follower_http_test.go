package replica_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/handlers"
	"github.com/gavelhq/gavel/projections"
)

func (tr *trio) serveHTTP() []string {
	urls := make([]string, len(tr.reps))
	for i, r := range tr.reps {
		srv := httptest.NewServer(handlers.NewHTTP(r, handlers.DefaultLimits(), testLogger()))
		tr.t.Cleanup(srv.Close)
		urls[i] = srv.URL
	}
	return urls
}

func httpDo(t *testing.T, method, url, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// Over HTTP: exactly one replica answers GET /node/primary with 200, every
// one lists that node as primary; every answer says how far its replica
// has applied; a follower's write is readable at once through another
// follower with ?min_txid=, and a txid no replica has is a typed 503; the
// primary's operator hands over with a request signed by its node key.
func TestReplicasOverHTTP(t *testing.T) {
	tr := startTrio(t, func(c *replica.Config) { c.AppliedWait = 200 * time.Millisecond })
	urls := tr.serveHTTP()
	p := tr.primary()
	f1, f2 := (p+1)%3, (p+2)%3
	for i, u := range urls {
		res, body := httpDo(t, "GET", u+"/node/primary", "", nil)
		if want := map[bool]int{true: 200, false: 404}[i == p]; res.StatusCode != want {
			t.Fatalf("replica %d: GET /node/primary %d (%s), want %d", i, res.StatusCode, body, want)
		}
		if res.Header.Get(handlers.HeaderAppliedTxID) == "" {
			t.Fatalf("replica %d: no %s", i, handlers.HeaderAppliedTxID)
		}
		res, body = httpDo(t, "GET", u+"/node/network/nodes", "", nil)
		var list struct{ Nodes []projections.NodeView }
		if err := json.Unmarshal(body, &list); err != nil || res.StatusCode != 200 {
			t.Fatalf("replica %d: nodes %d %s", i, res.StatusCode, body)
		}
		n := 0
		for _, v := range list.Nodes {
			if v.Primary {
				n++
				if v.NodeID != tr.ids[p] {
					t.Fatalf("replica %d names %s primary, not %s", i, v.NodeID, tr.ids[p])
				}
			}
		}
		if n != 1 {
			t.Fatalf("replica %d lists %d primaries", i, n)
		}
	}
	st, err := tr.iss.Sign("http/1", "text/plain", []byte("x"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res, body := httpDo(t, "POST", urls[f1]+"/entries", "application/cose", st)
	if res.StatusCode != 202 {
		t.Fatalf("POST /entries via a follower: %d %s", res.StatusCode, body)
	}
	tx, err := engine.ParseTxID(res.Header.Get(handlers.HeaderTxID))
	if err != nil {
		t.Fatal(err)
	}
	res, body = httpDo(t, "GET", urls[f2]+"/node/tx?transaction_id="+tx.String()+"&min_txid="+tx.String(), "", nil)
	applied, _ := engine.ParseTxID(res.Header.Get(handlers.HeaderAppliedTxID))
	if res.StatusCode != 200 || !bytes.Contains(body, []byte("Committed")) || applied.Seqno < tx.Seqno {
		t.Fatalf("read of %s with min_txid via the other follower: %d %s, applied %s", tx, res.StatusCode, body, applied)
	}
	future := engine.TxID{View: tx.View, Seqno: tx.Seqno + 1_000_000}
	res, body = httpDo(t, "GET", urls[f2]+"/node/network?min_txid="+future.String(), "", nil)
	if res.StatusCode != 503 || res.Header.Get("x-ms-error-code") != replica.CodeAppliedTooEarly {
		t.Fatalf("min_txid %s no replica has: %d %s", future, res.StatusCode, body)
	}
	// Stepdown: signed by another node's key it is refused; by the
	// primary's, the lease goes to the successor.
	wrong, err := replica.LoadNodeIdentity(tr.cfgs[f1].DataDir)
	if err != nil {
		t.Fatal(err)
	}
	signed, _ := replica.SignStepdown(wrong.Key, tr.ids[f1], time.Now())
	if res, body := httpDo(t, "POST", urls[p]+"/node/primary/stepdown", "application/cose", signed); res.StatusCode != 401 {
		t.Fatalf("stepdown signed by another node: %d %s", res.StatusCode, body)
	}
	own, err := replica.LoadNodeIdentity(tr.cfgs[p].DataDir)
	if err != nil {
		t.Fatal(err)
	}
	signed, _ = replica.SignStepdown(own.Key, tr.ids[f1], time.Now())
	if res, body := httpDo(t, "POST", urls[p]+"/node/primary/stepdown", "application/cose", signed); res.StatusCode != 204 {
		t.Fatalf("stepdown: %d %s", res.StatusCode, body)
	}
	if got := tr.primary(); got != f1 {
		t.Fatalf("replica %d leads after the stepdown, want %d", got, f1)
	}
	if res, _ := httpDo(t, "GET", urls[f1]+"/node/primary", "", nil); res.StatusCode != 200 {
		t.Fatalf("the successor answers GET /node/primary with %d", res.StatusCode)
	}
}

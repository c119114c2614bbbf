package handlers_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/receipt"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/handlers"
)

type fixture struct {
	t    testing.TB
	r    *replica.Replica
	url  string
	iss  *issuer.Issuer
	conf *conformance
}

func newFixture(t testing.TB, seq sequencer.Config) *fixture {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := replica.Open(context.Background(), replica.Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", Sequencer: seq, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	conf := newConformance(t, handlers.NewHTTP(r, handlers.DefaultLimits(), logger))
	srv := serveEdge(t, conf, handlers.ConnLimits{})
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, r: r, url: srv.URL, iss: iss, conf: conf}
}

// natsClient serves the fixture's replica over NATS and connects a client
// with the client credentials; both stop with the test.
func (f *fixture) natsClient(t testing.TB) *nats.Conn {
	t.Helper()
	return f.natsClientAs(t, natslog.UserMember)
}

// natsClientAs serves the submit subjects and connects as a client kind.
func (f *fixture) natsClientAs(t testing.TB, kind natslog.User) *nats.Conn {
	t.Helper()
	cfg := handlers.DefaultNATSConfig(16, handlers.DefaultLimits())
	cfg.InFlight, cfg.HasInterest = 16, f.r.HasInterest
	srv, err := handlers.ServeNATS(f.r.HandlerConn(), f.r, handlers.DefaultLimits(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	opt, err := natslog.ConnectOptions(f.r.ClientCredsFile(kind))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(f.r.NATSURL(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func fastSignatures() sequencer.Config {
	c := sequencer.DefaultConfig()
	c.SignInterval = 5 * time.Millisecond
	return c
}

func (f *fixture) sign(subject string, payload []byte, opts ...cose.SignOption) []byte {
	st, err := f.iss.Sign(subject, "text/plain", payload, time.Now(), opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

func (f *fixture) do(method, path, contentType string, body []byte) (int, http.Header, []byte) {
	req, _ := http.NewRequest(method, f.url+path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// register registers a statement as scitt-ccf-ledger's clients do: 202
// with a running operation whose id is the entry's txid.
func (f *fixture) register(st []byte) string {
	status, h, body := f.do("POST", "/entries", "application/cose", st)
	var op handlers.Operation
	if status != http.StatusAccepted || h.Get("Content-Type") != "application/cbor" || engine.CBORDecode.Unmarshal(body, &op) != nil {
		f.t.Fatalf("register: %d %x", status, body)
	}
	if op.Status != handlers.OperationRunning || h.Get("Location") != "/operations/"+op.OperationID || h.Get("x-ms-ccf-transaction-id") != op.OperationID {
		f.t.Fatalf("register: %+v %v", op, h)
	}
	return op.OperationID
}

// waitSigned waits until every entry is covered by a signature, so that
// the ledger stays still unless a request moves it.
func (f *fixture) waitSigned() {
	deadline := time.Now().Add(10 * time.Second)
	for m := f.r.Store().Meta(); m.LastSignature != m.Seqno; m = f.r.Store().Meta() {
		if time.Now().After(deadline) {
			f.t.Fatalf("entries after %d are still unsigned", m.LastSignature)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitCOSE polls a COSE route through 202s.
func (f *fixture) waitCOSE(path string) []byte {
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, h, body := f.do("GET", path, "", nil)
		if status == http.StatusOK && h.Get("Content-Type") == "application/cose" {
			return body
		}
		if status != http.StatusAccepted || time.Now().After(deadline) {
			f.t.Fatalf("GET %s: %d %s", path, status, body)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRegisterReceiptAndTransparentStatement(t *testing.T) {
	f := newFixture(t, fastSignatures())
	st := f.sign("demo/1", []byte("hello"))
	txid := f.register(st)
	tx, err := engine.ParseTxID(txid)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := receipt.KeySetFromPEM(f.r.Identity().CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	cd, _ := cose.ClaimsDigest(st)
	for _, path := range []string{"/receipt?transaction_id=" + txid, "/entries/" + txid + "/receipt"} {
		rc := f.waitCOSE(path)
		v, err := receipt.VerifyWithClaimsDigest(rc, f.r.Identity().Cert.PublicKey, cd)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if v.TxID.Seqno <= tx.Seqno {
			t.Fatalf("receipt signed at %s for %s", v.TxID, txid)
		}
		if lt, _ := v.Leaf.TxID(); lt != tx {
			t.Fatalf("receipt leaf is %s, want %s", lt, txid)
		}
	}
	ts := f.waitCOSE("/entries/" + txid + "/statement")
	res, err := receipt.VerifyTransparent(ts, keys, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.Statement.Subject != "demo/1" || len(res.Receipts) != 1 {
		t.Fatalf("transparent statement %+v", res)
	}
	// The receipt of the genesis entry and of a signature entry exist too.
	f.waitCOSE("/receipt?transaction_id=" + engine.TxID{View: tx.View, Seqno: 1}.String())
	// A statement route on a non-statement entry is a 404.
	status, _, body := f.do("GET", "/entries/"+engine.TxID{View: tx.View, Seqno: 1}.String()+"/statement", "", nil)
	if status != http.StatusNotFound || !strings.Contains(string(body), "NotAStatement") {
		t.Fatalf("statement of genesis: %d %s", status, body)
	}
	status, _, body = f.do("GET", "/node/network", "", nil)
	var info handlers.NetworkInfo
	if status != 200 || json.Unmarshal(body, &info) != nil || !strings.Contains(info.ServiceCertificate, "BEGIN CERTIFICATE") || info.CreateTxID == "" {
		t.Fatalf("network: %d %s", status, body)
	}
}

func TestReceiptPendingUntilSigned(t *testing.T) {
	cfg := sequencer.DefaultConfig()
	cfg.SignEvery, cfg.SignInterval = 1_000_000, time.Hour
	f := newFixture(t, cfg)
	txid := f.register(f.sign("pending", []byte("x")))
	status, h, body := f.do("GET", "/receipt?transaction_id="+txid, "", nil)
	if status != http.StatusAccepted || h.Get("Retry-After") == "" || !strings.Contains(string(body), "TransactionPendingSignature") {
		t.Fatalf("pending receipt: %d %q %s", status, h.Get("Retry-After"), body)
	}
}

// TestBadInputChangesNothing sends every kind of bad input and checks each
// gets its typed error while the ledger does not move.
func TestBadInputChangesNothing(t *testing.T) {
	f := newFixture(t, fastSignatures())
	good := f.sign("ok", []byte("payload"))
	f.register(good)
	f.waitSigned()
	before := f.r.Store().Meta()

	other, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// A statement whose chain does not satisfy its issuer DID.
	wrongChain, err := cose.SignStatement(f.iss.LeafKey, f.iss.Chain(), other.DID, "x", "text/plain", []byte("p"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	badSig := bytes.Clone(good)
	badSig[len(badSig)-5] ^= 0x01
	// Rewrite the protected header with an unknown algorithm, or without iss.
	unknownAlg := reheader(t, good, func(h map[any]any) { h[uint64(1)] = int64(-999) })
	noIssuer := reheader(t, good, func(h map[any]any) {
		claims := h[uint64(15)].(map[any]any)
		delete(claims, uint64(1))
	})
	noChain := reheader(t, good, func(h map[any]any) { delete(h, uint64(33)) })

	for _, tc := range []struct {
		name, method, path, contentType string
		body                            []byte
		status                          int
		code                            string
	}{
		{"wrong content type", "POST", "/entries", "application/json", good, 415, "UnsupportedContentType"},
		{"no content type", "POST", "/entries", "", good, 415, "UnsupportedContentType"},
		{"empty body", "POST", "/entries", "application/cose", nil, 400, "EmptyBody"},
		{"oversized body", "POST", "/entries", "application/cose", make([]byte, handlers.DefaultLimits().MaxStatementBytes+1), 413, "RequestTooLarge"},
		{"not COSE", "POST", "/entries", "application/cose", []byte("hello, world"), 400, "InvalidStatement"},
		{"truncated", "POST", "/entries", "application/cose", good[:len(good)/2], 400, "InvalidStatement"},
		{"bad signature", "POST", "/entries", "application/cose", badSig, 400, "InvalidSignature"},
		{"unknown algorithm", "POST", "/entries", "application/cose", unknownAlg, 400, "UnsupportedAlgorithm"},
		{"missing issuer", "POST", "/entries", "application/cose", noIssuer, 400, "InvalidStatement"},
		{"missing x5chain", "POST", "/entries", "application/cose", noChain, 400, "InvalidStatement"},
		{"chain does not match issuer", "POST", "/entries", "application/cose", wrongChain, 400, "InvalidIssuer"},
		{"receipt of unknown txid", "GET", "/receipt?transaction_id=1.999999", "", nil, 404, "TransactionNotFound"},
		{"receipt of wrong view", "GET", "/receipt?transaction_id=77.2", "", nil, 404, "TransactionNotFound"},
		{"receipt of bad txid", "GET", "/receipt?transaction_id=abc", "", nil, 400, "InvalidTransactionId"},
		{"receipt without txid", "GET", "/receipt", "", nil, 400, "MissingTransactionId"},
		{"entry receipt of unknown txid", "GET", "/entries/1.999999/receipt", "", nil, 404, "TransactionNotFound"},
		{"statement of unknown txid", "GET", "/entries/1.999999/statement", "", nil, 404, "TransactionNotFound"},
		{"unknown route", "GET", "/nope", "", nil, 404, "ResourceNotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := f.do(tc.method, tc.path, tc.contentType, tc.body)
			var eb handlers.ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil || h.Get("Content-Type") != "application/json" {
				t.Fatalf("%d: not a JSON error: %s", status, body)
			}
			if status != tc.status || eb.Error.Code != tc.code || eb.Error.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", status, eb.Error, tc.status, tc.code)
			}
		})
	}
	if after := f.r.Store().Meta(); after != before {
		t.Fatalf("bad input moved the ledger from %+v to %+v", before, after)
	}
	// And the service still serves.
	f.register(f.sign("still", []byte("serving")))
}

// reheader re-signs nothing: it swaps the protected header of a statement,
// so the result has a valid shape but a signature over other bytes.
func reheader(t *testing.T, st []byte, edit func(map[any]any)) []byte {
	var msg cbor.Tag
	if err := cbor.Unmarshal(st, &msg); err != nil {
		t.Fatal(err)
	}
	arr := msg.Content.([]any)
	var h map[any]any
	if err := cbor.Unmarshal(arr[0].([]byte), &h); err != nil {
		t.Fatal(err)
	}
	edit(h)
	enc, _ := engine.CBOR.Marshal(h)
	arr[0] = enc
	out, err := engine.CBOR.Marshal(cbor.Tag{Number: 18, Content: arr})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func FuzzPostEntries(f *testing.F) {
	fx := newFixture(f, fastSignatures())
	good := fx.sign("fuzz", []byte("seed"))
	f.Add(good)
	f.Add(good[:20])
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40})
	f.Add([]byte("{}"))
	before := fx.r.Store().Meta().Seqno
	f.Fuzz(func(t *testing.T, body []byte) {
		if bytes.Equal(body, good) {
			return // the one valid statement; registering it is not a fuzz finding
		}
		status, _, resp := fx.do("POST", "/entries", "application/cose", body)
		if status == http.StatusAccepted {
			// Only a statement that really verifies may land.
			st, err := cose.ParseStatement(body)
			if err != nil || cose.VerifyStatement(st, time.Now()) != nil {
				t.Fatalf("accepted an invalid statement %x", body)
			}
			return
		}
		if status >= 500 || status < 400 {
			t.Fatalf("status %d for %x: %s", status, body, resp)
		}
		if now := fx.r.Store().Meta().Seqno; now != before && sha256.Sum256(body) != sha256.Sum256(good) {
			// Signatures may still land from the timer; only statements count.
			if rec, ok, _ := fx.r.Store().Leaf(now); ok && rec.Kind == engine.KindStatement {
				t.Fatalf("a rejected body moved the ledger to %d", now)
			}
		}
	})
}

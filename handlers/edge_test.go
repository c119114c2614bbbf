package handlers_test

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gavelhq/gavel/handlers"
)

// serveEdge serves handler the way gavel serve does: gavel's server
// settings over a handlers.Listener.
func serveEdge(t testing.TB, handler http.Handler, limits handlers.ConnLimits) *httptest.Server {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewUnstartedServer(handler)
	srv.Config = handlers.NewServer(handler, logger)
	srv.Listener = handlers.NewListener(srv.Listener, limits, logger)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// rawRequest sends raw bytes on a new connection and reads one answer.
func rawRequest(t *testing.T, addr, raw string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to %.60q: %v", raw, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// jsonError checks that resp is gavel's JSON error body and returns it.
func jsonError(t *testing.T, resp *http.Response) handlers.ErrorDetail {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	var eb handlers.ErrorBody
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%d with Content-Type %q: %q", resp.StatusCode, ct, b)
	}
	if err := json.Unmarshal(b, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
		t.Fatalf("%d: not a JSON error: %q", resp.StatusCode, b)
	}
	return eb.Error
}

// Every answer is JSON: the server's own 400, 431, 501, 505 and 417 that
// net/http writes before any handler runs, the mux's 404 and 405 (with
// Allow), and unclean paths are answered, not redirected.
func TestEveryAnswerIsJSON(t *testing.T) {
	f := newFixture(t, fastSignatures())
	addr := strings.TrimPrefix(f.url, "http://")
	get := func(p string) string { return "GET " + p + " HTTP/1.1\r\nHost: gavel\r\n\r\n" }
	for _, tc := range []struct {
		name, raw string
		status    int
		code      string
		allow     string
	}{
		{"garbage request line", "HELLO\r\n\r\n", 400, "MalformedRequest", ""},
		{"no Host", "GET /node/network HTTP/1.1\r\n\r\n", 400, "MalformedRequest", ""},
		{"bad header line", "GET / HTTP/1.1\r\nHost: g\r\nno colon here\r\n\r\n", 400, "MalformedRequest", ""},
		{"huge headers", "GET / HTTP/1.1\r\nHost: g\r\nX-Big: " + strings.Repeat("a", 200<<10) + "\r\n\r\n", 431, "RequestHeaderFieldsTooLarge", ""},
		{"unknown transfer coding", "POST /entries HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: rot13\r\n\r\n", 501, "UnsupportedTransferEncoding", ""},
		{"HTTP/3.0", "GET / HTTP/3.0\r\nHost: g\r\n\r\n", 505, "HTTPVersionNotSupported", ""},
		{"unknown expectation", "POST /entries HTTP/1.1\r\nHost: g\r\nExpect: coffee\r\nContent-Length: 1\r\n\r\nx", 417, "ExpectationFailed", ""},
		{"asterisk target", "GET * HTTP/1.1\r\nHost: g\r\n\r\n", 400, "MalformedRequest", ""},
		{"unknown route", get("/nope"), 404, "ResourceNotFound", ""},
		{"unknown schema", get("/schemas/nope.json"), 404, "ResourceNotFound", ""},
		{"PUT /entries", "PUT /entries HTTP/1.1\r\nHost: g\r\nContent-Length: 0\r\n\r\n", 405, "MethodNotAllowed", "GET, HEAD, POST"},
		{"DELETE a receipt", "DELETE /entries/1.2/receipt HTTP/1.1\r\nHost: g\r\n\r\n", 405, "MethodNotAllowed", "GET, HEAD"},
		{"POST the proposal list", "POST /gov/members/proposals HTTP/1.1\r\nHost: g\r\nContent-Length: 0\r\n\r\n", 405, "MethodNotAllowed", "GET, HEAD"},
		{"POST under a proposal, no action", "POST /gov/members/proposals/p1?api-version=2024-07-01 HTTP/1.1\r\nHost: g\r\nContent-Length: 0\r\n\r\n", 404, "ResourceNotFound", ""},
		{"POST under a proposal, no api-version", "POST /gov/members/proposals/p1:withdraw HTTP/1.1\r\nHost: g\r\nContent-Length: 0\r\n\r\n", 400, "MissingApiVersionParameter", ""},
		{"double slash to nowhere", get("//nope//"), 404, "ResourceNotFound", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawRequest(t, addr, tc.raw)
			e := jsonError(t, resp)
			if resp.StatusCode != tc.status || e.Code != tc.code {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, e, tc.status, tc.code)
			}
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Fatalf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
	// Unclean paths are served as their clean form, not redirected.
	for _, p := range []string{"//node/network", "/node//network", "/entries/../node/network", "/./node/network"} {
		resp := rawRequest(t, addr, get(p))
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"service_certificate"`) {
			t.Fatalf("GET %s: %d %s", p, resp.StatusCode, b)
		}
	}
	for _, p := range []string{"/schemas", "/schemas/", "//schemas//actions/"} {
		resp := rawRequest(t, addr, get(p))
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"actions/set_member.json"`) {
			t.Fatalf("GET %s: %d %s", p, resp.StatusCode, b)
		}
	}
}

// The caps: a client address past its share, then the server past its
// total, is answered 503 TooManyConnections and closed; a freed slot is
// taken again.
func TestConnectionCaps(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	for _, tc := range []struct {
		name   string
		limits handlers.ConnLimits
		hold   int
		reason string
	}{
		{"per address", handlers.ConnLimits{MaxConns: 10, MaxConnsPerIP: 2}, 2, "client address 127.0.0.1 holds its limit of 2"},
		{"in all", handlers.ConnLimits{MaxConns: 3}, 3, "the server holds its limit of 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serveEdge(t, ok, tc.limits)
			ln := srv.Listener.(*handlers.Listener)
			addr := srv.Listener.Addr().String()
			var held []net.Conn
			for range tc.hold {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, c)
			}
			waitOpen(t, ln, tc.hold)
			resp := rawRequest(t, addr, "GET / HTTP/1.1\r\nHost: g\r\n\r\n")
			e := jsonError(t, resp)
			if resp.StatusCode != 503 || e.Code != "TooManyConnections" || !strings.Contains(e.Message, tc.reason) || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("got %d %+v", resp.StatusCode, e)
			}
			if st := ln.Stats(); st.Refused != 1 || st.Open != tc.hold || !strings.Contains(st.LastRefusal, tc.reason) {
				t.Fatalf("stats %+v", st)
			}
			held[0].Close()
			waitOpen(t, ln, tc.hold-1)
			resp = rawRequest(t, addr, "GET / HTTP/1.1\r\nHost: g\r\n\r\n")
			if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "ok" {
				t.Fatalf("after a slot was freed: %d %s", resp.StatusCode, b)
			}
			for _, c := range held[1:] {
				c.Close()
			}
		})
	}
}

func waitOpen(t *testing.T, ln *handlers.Listener, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for ln.Stats().Open != n {
		if time.Now().After(deadline) {
			t.Fatalf("open connections %d, want %d", ln.Stats().Open, n)
		}
		time.Sleep(time.Millisecond)
	}
}

package handlers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
)

// net/http's own answers, as conn.serve writes them.
var serverAnswers = []string{
	"HTTP/1.1 400 Bad Request" + serverErrorHeaders + "400 Bad Request",
	"HTTP/1.1 431 Request Header Fields Too Large" + serverErrorHeaders + "431 Request Header Fields Too Large",
	"HTTP/1.1 501 Not Implemented" + serverErrorHeaders + "Unsupported transfer encoding",
	"HTTP/1.1 400 Bad Request: missing required Host header" + serverErrorHeaders + "400 Bad Request: missing required Host header",
	"HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version" + serverErrorHeaders + "505 HTTP Version Not Supported: unsupported protocol version",
	"HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\nContent-Length: 0\r\n\r\n",
}

func TestRewriteServerAnswers(t *testing.T) {
	wantCodes := []string{"MalformedRequest", "RequestHeaderFieldsTooLarge", "UnsupportedTransferEncoding",
		"MalformedRequest", "HTTPVersionNotSupported", "ExpectationFailed"}
	for i, in := range serverAnswers {
		out, ok := rewriteServerAnswer([]byte(in))
		if !ok {
			t.Fatalf("%q not recognised", in)
		}
		status, _ := strconv.Atoi(in[9:12])
		e := checkJSONAnswer(t, out)
		if e.code != status || e.body.Error.Code != wantCodes[i] {
			t.Errorf("%q: got %d %+v", in, e.code, e.body.Error)
		}
	}
	// What handlers write (always with a Date header) passes untouched.
	for _, in := range []string{
		"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\nContent-Length: 11\r\n\r\nBad Request",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n200 OK",
		"HTTP/1.1 417 Expectation Failed\r\nDate: x\r\nContent-Length: 3\r\n\r\nabc",
		"plain body bytes",
	} {
		if _, ok := rewriteServerAnswer([]byte(in)); ok {
			t.Errorf("%q was rewritten", in)
		}
	}
}

type jsonAnswerParts struct {
	code int
	body ErrorBody
}

func checkJSONAnswer(t testing.TB, out []byte) jsonAnswerParts {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
	if err != nil {
		t.Fatalf("rewritten answer does not parse: %v: %q", err, out)
	}
	b, err := io.ReadAll(resp.Body)
	var eb ErrorBody
	if err != nil || resp.Header.Get("Content-Type") != "application/json" || resp.Close != true ||
		json.Unmarshal(b, &eb) != nil || eb.Error.Code == "" || eb.Error.Message == "" || resp.StatusCode < 400 {
		t.Fatalf("rewritten answer is not a closing JSON error: %q", out)
	}
	return jsonAnswerParts{resp.StatusCode, eb}
}

// Whatever the bytes, a rewrite is a well-formed closing JSON error answer.
func FuzzRewriteServerAnswer(f *testing.F) {
	for _, s := range serverAnswers {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, ok := rewriteServerAnswer(in)
		if !ok {
			return
		}
		if !bytes.HasPrefix(in, []byte("HTTP/1.1 ")) {
			t.Fatalf("rewrote %q", in)
		}
		checkJSONAnswer(t, out)
	})
}

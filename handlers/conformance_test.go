package handlers_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/gavelhq/gavel/schemas"
)

// conformance wraps the service's real handler and checks every answer it
// gives against CCF's facts: x-ms-ccf-transaction-id on every answer, and
// on /gov/ routes the JSON Schema of the answer (schemas/answers), CCF's
// error body with x-ms-error-code, WWW-Authenticate on 401, and no body on
// 204. A test that shows a wrong answer fails; seen records which schemas
// real answers exercised.
type conformance struct {
	t    testing.TB
	next http.Handler
	mu   sync.Mutex
	seen map[string]int
}

var txIDPattern = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)

// answerSchema names the schema of a 2xx /gov/ answer ("" for JavaScript
// answers, which have none).
func answerSchema(method, path string) (string, bool) {
	path = strings.TrimPrefix(path, "/gov/")
	seg := strings.Split(path, "/")
	switch {
	case method == "POST" && path == "members/proposals:create",
		method == "POST" && strings.HasPrefix(path, "members/proposals/") && (strings.HasSuffix(path, ":withdraw") || strings.HasSuffix(path, ":submit")):
		return "answers/Proposal", true
	case method == "POST" && strings.HasPrefix(path, "members/state-digests/") && strings.HasSuffix(path, ":update"):
		return "answers/StateDigest", true
	case method == "POST" && strings.HasPrefix(path, "members/state-digests/") && strings.HasSuffix(path, ":ack"):
		return "none", true
	case method != "GET":
		return "", false
	case path == "members/proposals":
		return "answers/PagedProposal", true
	case len(seg) == 3 && seg[1] == "proposals":
		return "answers/Proposal", true
	case len(seg) == 4 && seg[1] == "proposals" && seg[3] == "actions":
		return "answers/ProposalActions", true
	case len(seg) == 5 && seg[1] == "proposals" && seg[3] == "ballots":
		return "javascript", true
	case len(seg) == 3 && seg[1] == "state-digests":
		return "answers/StateDigest", true
	case path == "service/members":
		return "answers/PagedMember", true
	case len(seg) == 3 && seg[1] == "members":
		return "answers/Member", true
	case path == "service/info":
		return "answers/ServiceInfo", true
	case path == "service/constitution":
		return "javascript", true
	case path == "service/javascript-app":
		return "answers/JsApp", true
	case path == "service/join-policy":
		return "answers/JoinPolicies", true
	case path == "service/transactions/commit":
		return "answers/CommittedTransaction", true
	case len(seg) == 3 && seg[1] == "transactions":
		return "answers/Transaction", true
	}
	return "", false
}

func newConformance(t testing.TB, next http.Handler) *conformance {
	return &conformance{t: t, next: next, seen: map[string]int{}}
}

func (c *conformance) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	c.next.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
	c.check(r.Method, r.URL.Path, rec)
}

func (c *conformance) fail(format string, args ...any) {
	c.t.Errorf("conformance: "+format, args...)
}

func (c *conformance) record(schema string) {
	c.mu.Lock()
	c.seen[schema]++
	c.mu.Unlock()
}

func (c *conformance) check(method, path string, rec *httptest.ResponseRecorder) {
	what := method + " " + path
	body := rec.Body.Bytes()
	if tx := rec.Header().Get("x-ms-ccf-transaction-id"); !txIDPattern.MatchString(tx) {
		c.fail("%s: x-ms-ccf-transaction-id %q", what, tx)
	}
	if !strings.HasPrefix(path, "/gov/") {
		return
	}
	if rec.Code >= 400 {
		var eb struct {
			Error struct{ Code string } `json:"error"`
		}
		if err := schemas.ValidateJSON("answers/ErrorResponse", body); err != nil || json.Unmarshal(body, &eb) != nil {
			c.fail("%s: %d error body %s: %v", what, rec.Code, body, err)
			return
		}
		if got := rec.Header().Get("x-ms-error-code"); got != eb.Error.Code {
			c.fail("%s: x-ms-error-code %q, body code %q", what, got, eb.Error.Code)
		}
		if rec.Code == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "COSE-SIGN1") {
			c.fail("%s: 401 without WWW-Authenticate", what)
		}
		c.record("answers/ErrorResponse")
		return
	}
	if rec.Code == http.StatusNoContent {
		if len(body) != 0 {
			c.fail("%s: 204 with a body", what)
		}
		c.record("204")
		return
	}
	schema, ok := answerSchema(method, path)
	switch {
	case !ok:
		c.fail("%s: %d answer of no known route", what, rec.Code)
	case schema == "javascript":
		if rec.Header().Get("Content-Type") != "text/javascript" || !bytes.Contains(body, []byte("export")) {
			c.fail("%s: not JavaScript: %q", what, rec.Header().Get("Content-Type"))
		}
		c.record(schema + " " + path[strings.LastIndex(path, "/"):])
	case schema == "none":
		c.fail("%s: %d, want 204", what, rec.Code)
	default:
		if err := schemas.ValidateJSON(schema, body); err != nil {
			c.fail("%s: answer does not match %s: %v\n%s", what, schema, err, body)
		}
		c.record(schema)
	}
}

// covered fails unless real answers exercised every schema named.
func (c *conformance) covered(names ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range names {
		if c.seen[n] == 0 {
			c.t.Errorf("conformance: no answer checked against %s (seen %v)", n, c.seen)
		}
	}
}

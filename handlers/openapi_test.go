package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/responses"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/gavelhq/gavel/handlers"
)

// specChecker validates every answer of the handler it wraps against the
// OpenAPI document the service serves, and records which operations (by
// method and route pattern) real answers exercised.
type specChecker struct {
	t      testing.TB
	next   http.Handler
	bodies responses.ResponseBodyValidator
	paths  []docPath
	mu     sync.Mutex
	seen   map[string]int
}

// docPath is a documented path and the pattern its template makes.
type docPath struct {
	key    string
	re     *regexp.Regexp
	params int
	item   *v3.PathItem
}

// route finds the documented path of a request: the one with the fewest
// parameters whose template matches and that has the method. (The
// validator's own router takes CCF's "{proposalId}:withdraw" for the GET
// route "{proposalId}", so the checker routes and the validator checks.)
func (c *specChecker) route(r *http.Request) (docPath, bool) {
	var best docPath
	found := false
	for _, p := range c.paths {
		if !p.re.MatchString(r.URL.Path) || p.item.GetOperations().GetOrZero(strings.ToLower(r.Method)) == nil {
			continue
		}
		if !found || p.params < best.params {
			best, found = p, true
		}
	}
	return best, found
}

func newSpecChecker(t testing.TB, next http.Handler) *specChecker {
	t.Helper()
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	if rec.Code != 200 {
		t.Fatalf("/openapi.json: %d", rec.Code)
	}
	doc, err := libopenapi.NewDocument(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if v := doc.GetVersion(); v != "3.1.0" {
		t.Fatalf("OpenAPI version %q", v)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("document: %s: %s", e.Message, e.Reason)
		}
		t.FailNow()
	}
	c := &specChecker{t: t, next: next, bodies: responses.NewResponseBodyValidator(&model.Model), seen: map[string]int{}}
	tmpl := regexp.MustCompile(`\{[^}]+\}`)
	for key, item := range model.Model.Paths.PathItems.FromOldest() {
		re := regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(tmpl.ReplaceAllString(key, "\x00")), "\x00", "[^/]+") + "$")
		c.paths = append(c.paths, docPath{key: key, re: re, params: len(tmpl.FindAllString(key, -1)), item: item})
	}
	return c
}

func (c *specChecker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	c.next.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
	resp := rec.Result()
	resp.Request = r
	p, found := c.route(r)
	if !found {
		c.t.Errorf("%s %s → %d: no documented path", r.Method, r.URL, rec.Code)
		return
	}
	if ok, errs := c.bodies.ValidateResponseBodyWithPathItem(r, resp, p.item, p.key); !ok {
		for _, e := range errs {
			msg := e.Message + ": " + e.Reason
			for _, se := range e.SchemaValidationErrors {
				msg += "; " + se.FieldPath + " (" + se.KeywordLocation + "): " + se.Reason
			}
			c.t.Errorf("%s %s → %d does not match the document: %s\n%.400s", r.Method, r.URL, rec.Code, msg, rec.Body.Bytes())
		}
	}
	c.mu.Lock()
	c.seen[r.Method+" "+p.key]++
	c.mu.Unlock()
}

// TestLiveAnswersMatchOpenAPI serves a real replica with real data behind
// the checker, drives every route (with good and bad input), and fails on
// any answer the document does not describe.
func TestLiveAnswersMatchOpenAPI(t *testing.T) {
	o := newObserved(t)
	checker := newSpecChecker(t, o.srv.Config.Handler)
	o.srv.Config.Handler = checker
	p := o.populate(2)
	ctx := context.Background()
	if _, err := o.c.Receipt(ctx, p.statements[0], 10*time.Second); err != nil {
		t.Fatal(err)
	}
	v := "?api-version=" + handlers.APIVersion
	m0 := o.members[0].ID
	alice := o.alice.id
	tx := p.statements[0]
	gets := []string{
		"/node/network", "/node/tx?transaction_id=" + tx, "/node/commit", "/node/version", "/node/primary",
		"/node/network/nodes", "/node/network/nodes/" + alice, "/node/network/nodes/unknown", "/node/network/removable_nodes",
		"/receipt?transaction_id=" + tx, "/receipt", "/entries/" + tx, "/entries/" + tx + "/receipt", "/entries/" + tx + "/statement",
		"/entries/1.999999", "/entries?claims_digest=" + strings.Repeat("0", 64), "/entries?claims_digest=zz", "/operations/" + tx,
		"/gov/members/proposals" + v, "/gov/members/proposals" + v + "&state=Open", "/gov/members/proposals/" + p.open + v,
		"/gov/members/proposals/" + p.open + "/actions" + v, "/gov/members/proposals/" + p.open + "/ballots/" + o.members[2].ID + v,
		"/gov/members/proposals/" + p.open, "/gov/members/state-digests/" + m0 + v,
		"/gov/service/members" + v, "/gov/service/members/" + m0 + v, "/gov/service/constitution" + v, "/gov/service/info" + v,
		"/gov/service/javascript-app" + v, "/gov/service/join-policy" + v, "/gov/service/transactions/commit" + v,
		"/gov/service/transactions/" + tx + v,
		"/network-map", "/network-map/node-infos", "/network-map/acceptances", "/network-map/acceptances?hash=" + p.updateHash,
		"/network-map/network-parameters/" + p.updateHash, "/network-map/node-info/" + strings.Repeat("a", 64), "/network-map/node-info/bad",
		"/schemas", "/schemas/answers", "/schemas/proposal.json", "/schemas/cose.cddl",
		"/openapi.json", "/metrics", "/healthz", "/readyz", "/readyz?write=1", "/readyz?write=2",
		"/ui", "/ui/", "/ui/proposals", "/ui/proposals/" + p.open, "/ui/receipt/" + tx, "/ui/nope", "/ui/app.js", "/ui/app.css", "/ui/api/state",
		"/schemas/answers/Proposal.json",
	}
	for _, path := range gets {
		status, _, body := get(t, o.url+path)
		if status >= 500 {
			t.Errorf("GET %s: %d %s", path, status, body)
		}
	}
	infos, err := o.c.NodeInfos(ctx)
	if err != nil || len(infos) == 0 {
		t.Fatal(infos, err)
	}
	get(t, o.url+"/network-map/node-info/"+infos[0].Hash)
	// Writes with bad bodies: their error answers are documented too.
	for _, path := range []string{"/entries", "/node/join", "/node/primary/stepdown", "/network-map/publish", "/network-map/ack-parameters",
		"/gov/members/proposals:create" + v, "/gov/members/proposals/" + p.open + ":withdraw" + v,
		"/gov/members/proposals/" + p.open + "/ballots/" + m0 + ":submit" + v,
		"/gov/members/state-digests/" + m0 + ":update" + v, "/gov/members/state-digests/" + m0 + ":ack" + v} {
		if status, _, body := doPost(t, o.url+path, "application/cose", []byte("not cose")); status < 400 || status >= 500 {
			t.Errorf("POST %s with garbage: %d %s", path, status, body)
		}
	}
	// A good state digest update and ack (204), a withdrawal, a delete.
	sd, digest, err := o.c.UpdateStateDigest(ctx, o.members[0])
	if err != nil {
		t.Fatal(sd, err)
	}
	if _, err := o.c.AckStateDigest(ctx, o.members[0], digest); err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.c.Withdraw(ctx, o.members[1], p.open); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("DELETE", o.url+"/node/network/nodes/"+alice, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Fatalf("DELETE a trusted node: %v %v", resp, err)
	}
	req, _ = http.NewRequest("GET", o.url+"/network-map", nil)
	_, h, _ := get(t, o.url+"/network-map")
	req.Header.Set("If-None-Match", h.Get("ETag"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 304 {
		t.Fatalf("If-None-Match: %v %v", resp, err)
	}
	checker.covered()
}

// covered fails unless real answers exercised every documented operation.
func (c *specChecker) covered() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.paths {
		for method := range p.item.GetOperations().KeysFromOldest() {
			if key := strings.ToUpper(method) + " " + p.key; c.seen[key] == 0 {
				c.t.Errorf("no live answer of %s was checked", key)
			}
		}
	}
}

package handlers

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/engine/nodes"
	"github.com/gavelhq/gavel/projections"
)

// operation is one documented HTTP operation. Pattern is the mux pattern
// that serves it; Path is how OpenAPI names it (CCF's action suffixes such
// as "{proposalId}:withdraw" are one mux wildcard, parsed by the handler).
type operation struct {
	Pattern   string
	Path      string // "" means the pattern's path
	Summary   string
	Tag       string
	Query     []param
	Request   *content // nil: no body
	Responses map[string]content
}

type param struct {
	Name     string
	Required bool
	Schema   map[string]any
	Desc     string
}

// content is one body: a media type and its schema.
type content struct {
	Desc      string
	MediaType string
	Schema    map[string]any
	Also      []string // other media types of the same schema
	Payload   string   // the component a COSE body's payload follows
	Headers   []string // response headers worth naming
}

func (o operation) method() string { m, _, _ := strings.Cut(o.Pattern, " "); return m }

func (o operation) path() string {
	if o.Path != "" {
		return o.Path
	}
	_, p, _ := strings.Cut(o.Pattern, " ")
	return strings.ReplaceAll(p, "...}", "}")
}

var (
	str    = map[string]any{"type": "string"}
	txidQ  = param{Name: "transaction_id", Required: true, Schema: componentRef("answers.ccf.transactionId"), Desc: "a transaction id view.seqno"}
	apiVer = param{Name: "api-version", Required: true, Schema: map[string]any{"type": "string", "enum": []any{APIVersion, APIVersionPreview}}}
)

func jsonBody(desc string, schema map[string]any) content {
	return content{Desc: desc, MediaType: "application/json", Schema: schema}
}

func goBody(desc string, v any) content {
	return jsonBody(desc, componentRef("go."+reflect.TypeOf(v).Name()))
}

func coseBody(desc string) content {
	return content{Desc: desc, MediaType: contentTypeCOSE, Schema: map[string]any{"type": "string", "contentMediaType": contentTypeCOSE}}
}

func cborBody(desc string) content {
	return content{Desc: desc, MediaType: contentTypeCBOR, Schema: map[string]any{"type": "string", "contentMediaType": contentTypeCBOR}}
}

func textBody(desc, mediaType string) content {
	return content{Desc: desc, MediaType: mediaType, Schema: str}
}

// signed is a COSE_Sign1 request body whose payload a schema describes.
func signed(desc, payloadSchema string) *content {
	c := coseBody(desc)
	if payloadSchema != "" {
		c.Payload = payloadSchema
		c.Schema = map[string]any{"type": "string", "contentMediaType": contentTypeCOSE,
			"description": "COSE_Sign1; its payload follows #/components/schemas/" + payloadSchema + " (x-gavel-payload-schema)"}
	}
	return &c
}

func ok(c content) map[string]content { return map[string]content{"200": c} }

// goTypes are the Go answer types documented by reflection.
var goTypes = []any{NetworkInfo{}, NodeList{}, VersionInfo{}, PrimaryInfo{}, Acceptances{}, Health{}, nodes.JoinResult{},
	netmap.PublishResult{}, netmap.AckResult{}, nodeInfos{}, txStatus{}, committedTx{}, entryFound{}, schemaList{}, DashboardState{}}

// Answer shapes that are maps in the handlers, named for the document.
type (
	nodeInfos struct {
		NodeInfos []HashedBytes `json:"node_infos"`
	}
	txStatus struct {
		TransactionID string `json:"transaction_id"`
		Status        string `json:"status"`
	}
	committedTx struct {
		TransactionID string `json:"transaction_id"`
	}
	entryFound struct {
		TxID string `json:"txid"`
	}
	schemaList struct {
		Schemas []string `json:"schemas"`
	}
)

// operations lists every route of NewHTTP. The OpenAPI test walks the
// router and this list both ways.
func operations() []operation {
	gov := func(pattern, path, summary string, req *content, res map[string]content) operation {
		return operation{Pattern: pattern, Path: path, Summary: summary, Tag: "governance", Query: []param{apiVer}, Request: req, Responses: res}
	}
	pending := func(m map[string]content) map[string]content {
		m["202"] = jsonBody("not yet covered by a signature entry: retry (Retry-After)", componentRef("answers.ErrorResponse"))
		return m
	}
	uiPage := map[string]content{
		"200": {Desc: "the page or asset", MediaType: "text/html", Schema: str, Also: []string{"text/javascript", "text/css"}},
		"404": textBody("no such page (the page shell says so)", "text/html"),
	}
	page := []param{apiVer, {Name: "maxpagesize", Schema: map[string]any{"type": "integer", "minimum": 1}}, {Name: "skipToken", Schema: str}}
	return []operation{
		// Statements (SCITT, scitt-ccf-ledger's shapes).
		{Pattern: "POST /entries", Summary: "register a signed statement", Tag: "statements", Request: signed("a COSE_Sign1 signed statement", ""),
			Responses: map[string]content{"202": {Desc: "the running operation (Location: /operations/{txid})", MediaType: contentTypeCBOR,
				Schema: cborBody("").Schema, Headers: []string{"Location", HeaderTxID}}}},
		{Pattern: "GET /entries", Summary: "find a registered statement by claims digest", Tag: "statements",
			Query:     []param{{Name: "claims_digest", Required: true, Schema: componentRef("answers.ccf.hex64")}},
			Responses: ok(goBody("the statement's transaction", entryFound{}))},
		{Pattern: "GET /entries/{txid}", Summary: "the entry's receipt", Tag: "statements", Responses: pending(ok(coseBody("a CCF COSE receipt")))},
		{Pattern: "GET /entries/{txid}/receipt", Summary: "the entry's receipt", Tag: "statements", Responses: pending(ok(coseBody("a CCF COSE receipt")))},
		{Pattern: "GET /entries/{txid}/statement", Summary: "the transparent statement (receipt in header 394)", Tag: "statements", Responses: pending(ok(coseBody("a transparent statement")))},
		{Pattern: "GET /operations/{id}", Summary: "a registration's operation", Tag: "statements",
			Responses: map[string]content{"200": cborBody("succeeded, with its EntryId"), "202": cborBody("running")}},
		{Pattern: "GET /receipt", Summary: "any entry's receipt", Tag: "statements", Query: []param{txidQ}, Responses: pending(ok(coseBody("a CCF COSE receipt")))},

		// The service and its nodes (CCF's node API).
		{Pattern: "GET /node/network", Summary: "the service: certificate, view, last txids, write path", Tag: "node", Responses: ok(goBody("the service", NetworkInfo{}))},
		{Pattern: "GET /node/tx", Summary: "a transaction's status", Tag: "node", Query: []param{txidQ}, Responses: ok(goBody("its status", txStatus{}))},
		{Pattern: "GET /node/commit", Summary: "the last committed transaction", Tag: "node", Responses: ok(goBody("the transaction", committedTx{}))},
		{Pattern: "POST /node/join", Summary: "a node's signed join request, or a poll", Tag: "node", Request: signed("COSE_Sign1 by the node key", ""),
			Responses: ok(goBody("the node's state", nodes.JoinResult{}))},
		{Pattern: "GET /node/network/nodes", Summary: "the nodes", Tag: "node",
			Query:     []param{{Name: "status", Schema: str}, {Name: "host", Schema: str}},
			Responses: ok(goBody("the nodes", NodeList{}))},
		{Pattern: "GET /node/network/nodes/{id}", Summary: "one node", Tag: "node", Responses: ok(jsonBody("the node", componentRef("go.NodeView")))},
		{Pattern: "DELETE /node/network/nodes/{id}", Summary: "delete a removable node", Tag: "node", Responses: map[string]content{"204": {Desc: "deleted"}}},
		{Pattern: "GET /node/network/removable_nodes", Summary: "retired nodes whose retirement is committed", Tag: "node", Responses: ok(goBody("the nodes", NodeList{}))},
		{Pattern: "GET /node/version", Summary: "versions and host data", Tag: "node", Responses: ok(goBody("versions", VersionInfo{}))},
		{Pattern: "GET /node/primary", Summary: "200 on the primary (the lease holder), 404 elsewhere", Tag: "node",
			Responses: ok(goBody("the primary", PrimaryInfo{}))},
		{Pattern: "POST /node/primary/stepdown", Summary: "hand the primary's lease to a named successor (gavel's; CCF has none)", Tag: "node",
			Request: signed("COSE_Sign1 by the primary's node key", ""), Responses: map[string]content{"204": {Desc: "handed over"}}},

		// Governance (CCF 2024-07-01).
		gov("POST /gov/members/proposals:create", "", "submit a proposal", signed("COSE_Sign1 by a member", "proposal"),
			ok(jsonBody("the proposal", componentRef("answers.Proposal")))),
		gov("POST /gov/members/proposals/{proposalAction}", "/gov/members/proposals/{proposalId}:withdraw", "withdraw a proposal",
			signed("COSE_Sign1 by the proposer", ""), ok(jsonBody("the proposal", componentRef("answers.Proposal")))),
		gov("POST /gov/members/proposals/{proposalId}/ballots/{memberAction}", "/gov/members/proposals/{proposalId}/ballots/{memberId}:submit",
			"submit a ballot", signed("COSE_Sign1 by the member", "ballot"), ok(jsonBody("the proposal", componentRef("answers.Proposal")))),
		gov("POST /gov/members/state-digests/{memberAction}", "/gov/members/state-digests/{memberId}:update", "ask for a fresh state digest",
			signed("COSE_Sign1 by the member", ""), ok(jsonBody("the digest", componentRef("answers.StateDigest")))),
		gov("POST /gov/members/state-digests/{memberAction}", "/gov/members/state-digests/{memberId}:ack", "acknowledge the state digest (activation)",
			signed("COSE_Sign1 by the member", ""), map[string]content{"204": {Desc: "acknowledged"}}),
		gov("GET /gov/members/state-digests/{memberId}", "", "the member's state digest", nil, ok(jsonBody("the digest", componentRef("answers.StateDigest")))),
		{Pattern: "GET /gov/members/proposals", Summary: "proposals, paged", Tag: "governance", Query: append(page, param{Name: "state", Schema: componentRef("answers.ccf.ProposalState")}),
			Responses: ok(jsonBody("a page", componentRef("answers.PagedProposal")))},
		gov("GET /gov/members/proposals/{proposalId}", "", "a proposal", nil, ok(jsonBody("the proposal", componentRef("answers.Proposal")))),
		gov("GET /gov/members/proposals/{proposalId}/actions", "", "a proposal's actions", nil, ok(jsonBody("the actions", componentRef("answers.ProposalActions")))),
		gov("GET /gov/members/proposals/{proposalId}/ballots/{memberId}", "", "a member's ballot", nil, ok(textBody("the ballot's JavaScript", "text/javascript"))),
		{Pattern: "GET /gov/service/members", Summary: "members, paged", Tag: "governance", Query: page, Responses: ok(jsonBody("a page", componentRef("answers.PagedMember")))},
		gov("GET /gov/service/members/{memberId}", "", "a member", nil, ok(jsonBody("the member", componentRef("answers.Member")))),
		gov("GET /gov/service/constitution", "", "the constitution", nil, ok(textBody("its JavaScript", "text/javascript"))),
		gov("GET /gov/service/info", "", "the service's status and configuration", nil, ok(jsonBody("the service", componentRef("answers.ServiceInfo")))),
		gov("GET /gov/service/javascript-app", "", "the JavaScript app", nil, ok(jsonBody("the app", componentRef("answers.JsApp")))),
		gov("GET /gov/service/join-policy", "", "the join policies and trusted code identities", nil, ok(jsonBody("the policies", componentRef("answers.JoinPolicies")))),
		gov("GET /gov/service/transactions/commit", "", "the last committed transaction", nil, ok(jsonBody("the transaction", componentRef("answers.CommittedTransaction")))),
		gov("GET /gov/service/transactions/{transactionId}", "", "a transaction's status", nil, ok(jsonBody("its status", componentRef("answers.Transaction")))),

		// The network map (Corda).
		{Pattern: "POST /network-map/publish", Summary: "publish a signed NodeInfo", Tag: "network-map", Request: signed("COSE_Sign1 NodeInfo by the node key", ""),
			Responses: ok(goBody("the NodeInfo's hash and entry", netmap.PublishResult{}))},
		{Pattern: "POST /network-map/ack-parameters", Summary: "accept the pending parameters update", Tag: "network-map", Request: signed("COSE_Sign1 by the node key over the parameters hash", ""),
			Responses: ok(goBody("the acceptance", netmap.AckResult{}))},
		{Pattern: "GET /network-map", Summary: "the signed network map (ETag, max-age)", Tag: "network-map",
			Responses: map[string]content{"200": {Desc: "the map", MediaType: contentTypeCOSE, Schema: coseBody("").Schema, Headers: []string{"ETag", "Cache-Control"}},
				"304": {Desc: "If-None-Match matched"}}},
		{Pattern: "GET /network-map/node-info/{hash}", Summary: "a signed NodeInfo by hash", Tag: "network-map", Responses: ok(coseBody("the NodeInfo"))},
		{Pattern: "GET /network-map/network-parameters/{hash}", Summary: "signed network parameters by hash", Tag: "network-map", Responses: ok(coseBody("the parameters"))},
		{Pattern: "GET /network-map/node-infos", Summary: "the map's signed NodeInfos", Tag: "network-map", Responses: ok(goBody("the NodeInfos", nodeInfos{}))},
		{Pattern: "GET /network-map/acceptances", Summary: "who accepted an update (default: the pending one)", Tag: "network-map",
			Query: []param{{Name: "hash", Schema: componentRef("answers.ccf.hex64")}}, Responses: ok(goBody("the acceptances", Acceptances{}))},

		// The service's own documents and probes.
		{Pattern: "GET /schemas", Summary: "the JSON Schemas", Tag: "meta", Responses: ok(goBody("their names", schemaList{}))},
		{Pattern: "GET /schemas/{path...}", Summary: "a JSON Schema, the CDDL, or a folder's names", Tag: "meta",
			Responses: ok(content{Desc: "the schema (JSON), the CDDL (text) or a list", MediaType: "application/json", Schema: map[string]any{}, Also: []string{"text/plain"}})},
		{Pattern: "GET /schemas/{path...}", Path: "/schemas/{folder}/{file}", Summary: "a JSON Schema in a folder (answers/, actions/)", Tag: "meta",
			Responses: ok(jsonBody("the schema", map[string]any{"type": "object"}))},
		{Pattern: "GET /openapi.json", Summary: "this document", Tag: "meta", Responses: ok(jsonBody("OpenAPI 3.1", map[string]any{"type": "object"}))},
		{Pattern: "GET /metrics", Summary: "Prometheus metrics", Tag: "meta", Responses: ok(textBody("the text exposition format", "text/plain"))},
		{Pattern: "GET /healthz", Summary: "the process serves", Tag: "meta", Responses: ok(goBody("ok", Health{}))},
		{Pattern: "GET /readyz", Summary: "reads (and with write=1, writes) can be served", Tag: "meta",
			Query:     []param{{Name: "write", Schema: map[string]any{"type": "string", "enum": []any{"0", "1", "true", "false"}}}},
			Responses: map[string]content{"200": goBody("ready", Health{}), "503": goBody("not ready, with the reason", Health{})}},

		// The dashboard.
		{Pattern: "GET /ui", Summary: "the dashboard", Tag: "dashboard", Responses: ok(textBody("the page", "text/html"))},
		{Pattern: "GET /ui/{page...}", Summary: "a dashboard page (proposals, members, nodes, code, map, ledger) or asset (app.js, app.css)", Tag: "dashboard",
			Responses: uiPage},
		{Pattern: "GET /ui/{page...}", Path: "/ui/", Summary: "the dashboard's overview", Tag: "dashboard", Responses: uiPage},
		{Pattern: "GET /ui/{page...}", Path: "/ui/proposals/{proposalId}", Summary: "a proposal's dashboard page", Tag: "dashboard", Responses: uiPage},
		{Pattern: "GET /ui/{page...}", Path: "/ui/receipt/{txid}", Summary: "a receipt's dashboard page, verified in the browser", Tag: "dashboard", Responses: uiPage},
		{Pattern: "GET /ui/api/state", Summary: "what the dashboard shows (ETag; poll with If-None-Match)", Tag: "dashboard",
			Responses: map[string]content{"200": {Desc: "the state", MediaType: "application/json", Schema: componentRef("go.DashboardState"), Headers: []string{"ETag"}},
				"304": {Desc: "unchanged"}}},
	}
}

// openAPI builds the document once.
var openAPI = sync.OnceValues(buildOpenAPI)

func buildOpenAPI() ([]byte, error) {
	comps, err := schemaComponents()
	if err != nil {
		return nil, err
	}
	for _, v := range append(goTypes, projections.NodeView{}) {
		t := reflect.TypeOf(v)
		comps["go."+t.Name()] = goSchema(t)
	}
	errRef := componentRef("answers.ErrorResponse")
	paths := map[string]map[string]any{}
	for _, op := range operations() {
		responses := map[string]any{}
		for code, c := range op.Responses {
			responses[code] = responseObject(c)
		}
		for _, code := range []string{"4XX", "5XX"} {
			responses[code] = map[string]any{"description": "a typed error: {\"error\":{\"code\",\"message\"}}",
				"content": map[string]any{"application/json": map[string]any{"schema": errRef}}}
		}
		o := map[string]any{"summary": op.Summary, "tags": []string{op.Tag}, "responses": responses,
			"operationId": operationID(op)}
		var params []any
		for _, name := range pathParams(op.path()) {
			params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": str})
		}
		for _, q := range op.Query {
			p := map[string]any{"name": q.Name, "in": "query", "required": q.Required, "schema": q.Schema}
			if q.Desc != "" {
				p["description"] = q.Desc
			}
			params = append(params, p)
		}
		if len(params) > 0 {
			o["parameters"] = params
		}
		if op.Request != nil {
			media := map[string]any{"schema": op.Request.Schema}
			if op.Request.Payload != "" {
				media["x-gavel-payload-schema"] = componentRef(op.Request.Payload)
			}
			o["requestBody"] = map[string]any{"required": true, "description": op.Request.Desc,
				"content": map[string]any{op.Request.MediaType: media}}
		}
		if paths[op.path()] == nil {
			paths[op.path()] = map[string]any{}
		}
		paths[op.path()][strings.ToLower(op.method())] = o
	}
	doc := map[string]any{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
		"info": map[string]any{"title": "gavel", "version": APIVersion,
			"description": "gavel's HTTP API: CCF governance (api-version " + APIVersion + "), CCF node and receipt routes, SCITT registration, the Corda network map, probes, metrics and the dashboard. Every error is {\"error\":{\"code\",\"message\"}} with x-ms-error-code."},
		"paths":      paths,
		"components": map[string]any{"schemas": comps},
	}
	return json.MarshalIndent(doc, "", " ")
}

func responseObject(c content) map[string]any {
	r := map[string]any{"description": c.Desc}
	if r["description"] == "" {
		r["description"] = "answer"
	}
	if c.MediaType != "" {
		m := map[string]any{c.MediaType: map[string]any{"schema": c.Schema}}
		for _, t := range c.Also {
			m[t] = map[string]any{"schema": c.Schema}
		}
		r["content"] = m
	}
	if len(c.Headers) > 0 {
		h := map[string]any{}
		for _, name := range c.Headers {
			h[name] = map[string]any{"schema": str}
		}
		r["headers"] = h
	}
	return r
}

func pathParams(p string) []string {
	var out []string
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(p[i:], '}')
		out = append(out, p[i+1:i+j])
		p = p[i+j+1:]
	}
}

// operationID is the operation's method and path as an identifier.
func operationID(op operation) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(op.method()))
	up := true
	for _, r := range op.path() {
		switch {
		case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9':
			if up && r >= 'a' && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			up = false
		default:
			up = true
		}
	}
	return b.String()
}

func (h *HTTP) getOpenAPI(w http.ResponseWriter, r *http.Request) {
	b, err := openAPI()
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

package handlers

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/projections"
)

// API versions of CCF's governance API that gavel serves: the answers are
// the same in both, as in CCF for these routes.
const (
	APIVersion        = "2024-07-01"
	APIVersionPreview = "2023-06-01-preview"
)

var apiVersions = map[string]bool{APIVersionPreview: true, APIVersion: true}

// Paging of lists (CCF's {"value", "nextLink"}): DefaultPageSize items a
// page unless ?maxpagesize= (a gavel extension) asks for fewer.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// govRoutes adds CCF's governance routes. CCF's action suffixes (":create",
// ":withdraw", ":submit", ":update", ":ack") sit inside path segments,
// which the standard mux cannot match around a wildcard, so the last
// segment of those POST routes is parsed here. No pattern is a subtree
// ("/" or "{x...}" at the end), so the mux never redirects to add a slash.
func (h *HTTP) govRoutes(mux *http.ServeMux) {
	route := func(pattern string, fn http.HandlerFunc) { mux.HandleFunc(pattern, h.requireAPIVersion(fn)) }
	route("POST /gov/members/proposals:create", func(w http.ResponseWriter, r *http.Request) {
		h.submitGov(w, r, govreq.MsgProposal, "", "")
	})
	route("POST /gov/members/proposals/{proposalAction}", h.postWithdrawal)
	route("POST /gov/members/proposals/{proposalId}/ballots/{memberAction}", h.postBallot)
	route("POST /gov/members/state-digests/{memberAction}", h.postStateDigest)
	route("GET /gov/members/state-digests/{memberId}", h.getStateDigest)
	route("GET /gov/members/proposals", h.getProposals)
	route("GET /gov/members/proposals/{proposalId}", h.getProposal)
	route("GET /gov/members/proposals/{proposalId}/actions", h.getProposalActions)
	route("GET /gov/members/proposals/{proposalId}/ballots/{memberId}", h.getBallot)
	route("GET /gov/service/members", h.getMembers)
	route("GET /gov/service/members/{memberId}", h.getMember)
	route("GET /gov/service/constitution", h.getConstitution)
	route("GET /gov/service/info", h.getServiceInfo)
	route("GET /gov/service/javascript-app", h.getJSApp)
	route("GET /gov/service/join-policy", h.getJoinPolicy)
	route("GET /gov/service/transactions/commit", h.getCommitGov)
	route("GET /gov/service/transactions/{transactionId}", h.getTransactionGov)
}

// requireAPIVersion refuses a /gov/ request without a served api-version,
// as CCF does.
func (h *HTTP) requireAPIVersion(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := r.URL.Query()["api-version"]
		supported := "The supported api-versions are: " + APIVersionPreview + ", " + APIVersion
		switch {
		case !ok:
			h.fail(w, engine.Errorf(engine.KindInvalid, "MissingApiVersionParameter",
				"The api-version query parameter (?api-version=) is required for this request. %s", supported))
		case len(v) != 1 || !apiVersions[v[0]]:
			h.fail(w, engine.Errorf(engine.KindInvalid, "UnsupportedApiVersionValue",
				"Unsupported api-version '%s'. %s", truncateParam(strings.Join(v, ",")), supported))
		default:
			next(w, r)
		}
	}
}

// hexID checks a route's id the way CCF does (64 hex characters; gavel's
// ids are lowercase, so a well-formed id in capitals names nothing).
func hexID(r *http.Request, param, what string) (string, error) {
	id := r.PathValue(param)
	if len(id) != 64 {
		return "", invalidResource(id, what)
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", invalidResource(id, what)
	}
	return strings.ToLower(id), nil
}

func invalidResource(id, what string) error {
	return engine.Errorf(engine.KindInvalid, "InvalidResourceName", "'%s' is not a valid hex-encoded %s", truncateParam(id), what)
}

func truncateParam(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// postWithdrawal routes "{id}:withdraw".
func (h *HTTP) postWithdrawal(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutSuffix(r.PathValue("proposalAction"), ":withdraw")
	if !ok {
		h.fail(w, errNoRoute(r))
		return
	}
	r.SetPathValue("proposalId", id)
	if _, err := hexID(r, "proposalId", "proposal ID"); err != nil {
		h.fail(w, err)
		return
	}
	h.submitGov(w, r, govreq.MsgWithdrawal, id, "")
}

// postBallot routes "{id}/ballots/{member}:submit".
func (h *HTTP) postBallot(w http.ResponseWriter, r *http.Request) {
	member, ok := strings.CutSuffix(r.PathValue("memberAction"), ":submit")
	if !ok {
		h.fail(w, errNoRoute(r))
		return
	}
	r.SetPathValue("memberId", member)
	if _, err := hexID(r, "proposalId", "proposal ID"); err != nil {
		h.fail(w, err)
		return
	}
	if _, err := hexID(r, "memberId", "member ID"); err != nil {
		h.fail(w, err)
		return
	}
	h.submitGov(w, r, govreq.MsgBallot, r.PathValue("proposalId"), member)
}

// postStateDigest routes "{member}:update" and "{member}:ack".
func (h *HTTP) postStateDigest(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("memberAction")
	for _, a := range [...]struct {
		suffix string
		typ    govreq.MsgType
	}{{":update", govreq.MsgStateDigest}, {":ack", govreq.MsgAck}} {
		if member, ok := strings.CutSuffix(action, a.suffix); ok {
			r.SetPathValue("memberId", member)
			if _, err := hexID(r, "memberId", "member ID"); err != nil {
				h.fail(w, err)
				return
			}
			h.submitGov(w, r, a.typ, "", member)
			return
		}
	}
	h.fail(w, errNoRoute(r))
}

func (h *HTTP) submitGov(w http.ResponseWriter, r *http.Request, typ govreq.MsgType, proposalID, memberID string) {
	body, ok := h.readCOSE(w, r, h.limits.MaxGovBytes)
	if !ok {
		return
	}
	res, err := h.svc.SubmitGov(r.Context(), typ, proposalID, memberID, body)
	if err != nil {
		h.fail(w, err)
		return
	}
	if res.TxID.Seqno > 0 {
		w.Header().Set(HeaderTxID, res.TxID.String())
	}
	if len(res.Body) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSONBytes(w, http.StatusOK, res.Body)
}

// pageToken is what a nextLink's skipToken carries: the last key served,
// the filter it was served under, the service and the ledger size it was
// issued at, and a check over all of it.
type pageToken struct {
	After   string `json:"a"`
	Filter  string `json:"f,omitempty"`
	Service string `json:"v"` // the service's creation txid
	Seqno   uint64 `json:"n"`
	Check   string `json:"c"`
}

func (t pageToken) check() string {
	sum := sha256.Sum256([]byte("gavel-page\x00" + t.After + "\x00" + t.Filter + "\x00" + t.Service + "\x00" + strconv.FormatUint(t.Seqno, 10)))
	return hex.EncodeToString(sum[:8])
}

func errBadToken(format string, args ...any) error {
	return engine.Errorf(engine.KindInvalid, "InvalidQueryParameterValue", "skipToken: "+format, args...)
}

// page reads a list request's paging: the page to serve and the token
// facts to carry on. A malformed token, one for another filter, or a stale
// one (another service, or a ledger position this replica has not reached)
// is refused.
func (h *HTTP) page(r *http.Request, filter string) (projections.Page, pageToken, error) {
	q := r.URL.Query()
	page := projections.Page{Limit: DefaultPageSize}
	if s := q.Get("maxpagesize"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageSize {
			return page, pageToken{}, engine.Errorf(engine.KindInvalid, "InvalidQueryParameterValue",
				"maxpagesize must be an integer in [1, %d], not %q", MaxPageSize, truncateParam(s))
		}
		page.Limit = n
	}
	info, err := h.svc.ServiceInfo(r.Context())
	if err != nil {
		return page, pageToken{}, err
	}
	tip, err := h.svc.Committed(r.Context())
	if err != nil {
		return page, pageToken{}, err
	}
	next := pageToken{Filter: filter, Service: info.CreationTransactionID, Seqno: tip.Seqno}
	raw := q.Get("skipToken")
	if _, present := q["skipToken"]; !present {
		return page, next, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	var t pageToken
	if err != nil || json.Unmarshal(b, &t) != nil || t.Check != t.check() {
		return page, next, errBadToken("%q is not a token this service issued", truncateParam(raw))
	}
	if t.Filter != filter {
		return page, next, errBadToken("the token was issued for state %q, not %q", t.Filter, filter)
	}
	if t.Service != info.CreationTransactionID || t.Seqno > tip.Seqno {
		return page, next, errBadToken("the token is stale: it was issued by service %s at seqno %d; this is service %s at seqno %d",
			t.Service, t.Seqno, info.CreationTransactionID, tip.Seqno)
	}
	page.After = t.After
	return page, next, nil
}

// list writes CCF's paged list: {"value": items, "nextLink": …} with a
// nextLink only when more items follow.
func (h *HTTP) list(w http.ResponseWriter, r *http.Request, items any, more bool, last string, next pageToken) {
	body := struct {
		Value    any    `json:"value"`
		NextLink string `json:"nextLink,omitempty"`
	}{Value: items, NextLink: nextLink(r, more, last, next)}
	h.writeJSON(w, body)
}

// nextLink is the link to the page after last ("" when none follows).
func nextLink(r *http.Request, more bool, last string, next pageToken) string {
	if !more {
		return ""
	}
	next.After = last
	next.Check = next.check()
	tb, _ := json.Marshal(next)
	q := r.URL.Query()
	q.Set("skipToken", base64.RawURLEncoding.EncodeToString(tb))
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawQuery: q.Encode()}).String()
}

func (h *HTTP) getProposals(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	switch state {
	case "", gov.StateOpen, gov.StateAccepted, gov.StateRejected, gov.StateWithdrawn, gov.StateFailed, gov.StateDropped:
	default:
		h.fail(w, engine.Errorf(engine.KindInvalid, "InvalidQueryParameterValue", "no proposal state %q", truncateParam(state)))
		return
	}
	page, next, err := h.page(r, state)
	if err != nil {
		h.fail(w, err)
		return
	}
	ps, more, err := h.svc.Proposals(r.Context(), state, page)
	if err != nil {
		h.fail(w, err)
		return
	}
	last := ""
	if len(ps) > 0 {
		last = ps[len(ps)-1].ProposalID
	}
	h.list(w, r, ps, more, last, next)
}

func (h *HTTP) getProposal(w http.ResponseWriter, r *http.Request) {
	id, err := hexID(r, "proposalId", "proposal ID")
	if err != nil {
		h.fail(w, err)
		return
	}
	p, err := h.svc.Proposal(r.Context(), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeJSON(w, p)
}

func (h *HTTP) getProposalActions(w http.ResponseWriter, r *http.Request) {
	id, err := hexID(r, "proposalId", "proposal ID")
	if err != nil {
		h.fail(w, err)
		return
	}
	p, err := h.svc.Proposal(r.Context(), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSONBytes(w, http.StatusOK, []byte(p.Body))
}

func (h *HTTP) getBallot(w http.ResponseWriter, r *http.Request) {
	id, err := hexID(r, "proposalId", "proposal ID")
	if err != nil {
		h.fail(w, err)
		return
	}
	member, err := hexID(r, "memberId", "member ID")
	if err != nil {
		h.fail(w, err)
		return
	}
	src, err := h.svc.Ballot(r.Context(), id, member)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJavaScript(w, src)
}

func (h *HTTP) getMembers(w http.ResponseWriter, r *http.Request) {
	page, next, err := h.page(r, "")
	if err != nil {
		h.fail(w, err)
		return
	}
	ms, more, err := h.svc.Members(r.Context(), page)
	if err != nil {
		h.fail(w, err)
		return
	}
	last := ""
	if len(ms) > 0 {
		last = ms[len(ms)-1].MemberID
	}
	h.list(w, r, ms, more, last, next)
}

func (h *HTTP) getMember(w http.ResponseWriter, r *http.Request) {
	id, err := hexID(r, "memberId", "member ID")
	if err != nil {
		h.fail(w, err)
		return
	}
	m, err := h.svc.Member(r.Context(), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeJSON(w, m)
}

func (h *HTTP) getStateDigest(w http.ResponseWriter, r *http.Request) {
	id, err := hexID(r, "memberId", "member ID")
	if err != nil {
		h.fail(w, err)
		return
	}
	d, err := h.svc.StateDigest(r.Context(), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeJSON(w, d)
}

func (h *HTTP) getConstitution(w http.ResponseWriter, r *http.Request) {
	src, err := h.svc.ConstitutionSource(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJavaScript(w, src)
}

func writeJavaScript(w http.ResponseWriter, src string) {
	w.Header().Set("Content-Type", "text/javascript")
	w.Header().Set("Content-Length", strconv.Itoa(len(src)))
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(src))
}

func (h *HTTP) getServiceInfo(w http.ResponseWriter, r *http.Request) {
	info, err := h.svc.ServiceInfo(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeJSON(w, info)
}

func (h *HTTP) getJSApp(w http.ResponseWriter, r *http.Request) {
	app, err := h.svc.JSApp(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeJSON(w, app)
}

func (h *HTTP) getJoinPolicy(w http.ResponseWriter, r *http.Request) {
	jp, err := h.svc.JoinPolicies(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeJSON(w, jp)
}

// getTransactionGov is CCF's Transactions_Get: {"status"}.
func (h *HTTP) getTransactionGov(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("transactionId")
	tx, err := engine.ParseTxID(raw)
	if err != nil {
		h.fail(w, engine.Errorf(engine.KindInvalid, "InvalidResourceName", "'%s' is not a valid transaction ID", truncateParam(raw)))
		return
	}
	status, err := h.svc.TransactionStatus(r.Context(), tx)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeJSON(w, map[string]string{"status": status})
}

// getCommitGov is CCF's Transactions_GetCommit.
func (h *HTTP) getCommitGov(w http.ResponseWriter, r *http.Request) {
	tx, err := h.svc.Committed(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeJSON(w, map[string]string{"transactionId": tx.String(), "status": "Committed"})
}

func (h *HTTP) writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSONBytes(w, http.StatusOK, b)
}

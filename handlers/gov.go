package handlers

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
)

// govRoutes adds CCF's governance routes. CCF's action suffixes (":create",
// ":withdraw", ":submit") sit inside path segments, which the standard mux
// cannot match around a wildcard, so the last segment of the POST routes
// under a proposal is parsed here. No pattern is a subtree ("/" or
// "{x...}" at the end), so the mux never redirects to add a slash.
func (h *HTTP) govRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /gov/members/proposals:create", func(w http.ResponseWriter, r *http.Request) {
		h.submitGov(w, r, govreq.MsgProposal, "", "")
	})
	mux.HandleFunc("POST /gov/members/proposals/{id}", h.postWithdrawal)
	mux.HandleFunc("POST /gov/members/proposals/{id}/ballots/{member}", h.postBallot)
	mux.HandleFunc("GET /gov/members/proposals", h.getProposals)
	mux.HandleFunc("GET /gov/members/proposals/{id}", h.getProposal)
	mux.HandleFunc("GET /gov/members/proposals/{id}/actions", h.getProposalActions)
	mux.HandleFunc("GET /gov/service/members", h.getMembers)
	mux.HandleFunc("GET /gov/service/constitution", h.getConstitution)
	mux.HandleFunc("GET /gov/service/info", h.getServiceInfo)
}

// postWithdrawal routes "{id}:withdraw".
func (h *HTTP) postWithdrawal(w http.ResponseWriter, r *http.Request) {
	if id, ok := strings.CutSuffix(r.PathValue("id"), ":withdraw"); ok && id != "" && !strings.Contains(id, "/") {
		h.submitGov(w, r, govreq.MsgWithdrawal, id, "")
		return
	}
	h.fail(w, errNoRoute(r))
}

// postBallot routes "{id}/ballots/{member}:submit".
func (h *HTTP) postBallot(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if member, ok := strings.CutSuffix(r.PathValue("member"), ":submit"); ok && member != "" &&
		!strings.Contains(id, "/") && !strings.Contains(member, "/") {
		h.submitGov(w, r, govreq.MsgBallot, id, member)
		return
	}
	h.fail(w, errNoRoute(r))
}

func (h *HTTP) submitGov(w http.ResponseWriter, r *http.Request, typ govreq.MsgType, proposalID, memberID string) {
	if err := requireContentType(r, contentTypeCOSE); err != nil {
		h.fail(w, err)
		return
	}
	body, err := readBody(w, r, h.limits.MaxGovBytes)
	if err != nil {
		h.fail(w, err)
		return
	}
	res, err := h.svc.SubmitGov(r.Context(), typ, proposalID, memberID, body)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSONBytes(w, http.StatusOK, res)
}

func (h *HTTP) getProposals(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	switch state {
	case "", gov.StateOpen, gov.StateAccepted, gov.StateRejected, gov.StateWithdrawn, gov.StateFailed, gov.StateDropped:
	default:
		h.fail(w, engine.Errorf(engine.KindInvalid, "InvalidState", "no proposal state %q", state))
		return
	}
	ps, err := h.svc.Proposals(r.Context(), state)
	if err != nil {
		h.fail(w, err)
		return
	}
	if ps == nil {
		ps = []*gov.Proposal{}
	}
	h.writeJSON(w, map[string]any{"proposals": ps})
}

func (h *HTTP) getProposal(w http.ResponseWriter, r *http.Request) {
	p, err := h.svc.Proposal(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeJSON(w, p)
}

func (h *HTTP) getProposalActions(w http.ResponseWriter, r *http.Request) {
	p, err := h.svc.Proposal(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSONBytes(w, http.StatusOK, []byte(p.Body))
}

func (h *HTTP) getMembers(w http.ResponseWriter, r *http.Request) {
	ms, err := h.svc.Members(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeJSON(w, map[string]any{"members": ms})
}

func (h *HTTP) getConstitution(w http.ResponseWriter, r *http.Request) {
	src, err := h.svc.ConstitutionSource(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/javascript")
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

func (h *HTTP) writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSONBytes(w, http.StatusOK, b)
}

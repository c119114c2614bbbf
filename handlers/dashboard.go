package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/handlers/ui"
	"github.com/gavelhq/gavel/projections"
)

// LedgerTail is the dashboard's view of the log: the last entries.
type LedgerTail interface {
	LedgerTail(ctx context.Context, n int) ([]LedgerEntry, error)
}

// JoinPolicySource is the node join policy script in force, for the
// dashboard ("" when none is set).
type JoinPolicySource interface {
	JoinPolicySource(ctx context.Context) (string, error)
}

// LedgerEntry is one entry of the ledger tail.
type LedgerEntry struct {
	TxID   string    `json:"txid"`
	Kind   string    `json:"kind"`
	Time   time.Time `json:"time"`
	Signed bool      `json:"signed"` // a signature entry covers it: its receipt can be had
}

// Dashboard limits: how much of each list /ui/api/state carries.
const (
	dashboardLedgerTail = 50
	dashboardProposals  = 100
	dashboardMembers    = 100
)

// DashboardState is everything the dashboard shows, in one ETag'd
// document the pages poll. Parts that could not be read are named in
// Errors and left empty, so a page says what failed instead of going blank.
type DashboardState struct {
	Network      NetworkInfo               `json:"network"`
	Leader       string                    `json:"leader"`
	View         uint64                    `json:"view"`
	Version      *VersionInfo              `json:"version"`
	Proposals    []DashboardProposal       `json:"proposals"`
	Members      []projections.Member      `json:"members"`
	Nodes        []projections.NodeView    `json:"nodes"`
	JoinPolicies *projections.JoinPolicies `json:"join_policies"`
	JoinPolicy   string                    `json:"join_policy"` // the script; "" when none is set
	Map          *DashboardMap             `json:"network_map"`
	Ledger       []LedgerEntry             `json:"ledger"`
	Errors       map[string]string         `json:"errors"`
}

// DashboardProposal is a proposal with its actions and ballots.
type DashboardProposal struct {
	ProposalID   string            `json:"proposal_id"`
	ProposerID   string            `json:"proposer_id"`
	State        string            `json:"state"`
	CreatedTxID  string            `json:"created_txid"`
	Actions      json.RawMessage   `json:"actions"`
	Ballots      map[string]string `json:"ballots"`
	FinalVotes   map[string]bool   `json:"final_votes"`
	VoteFailures map[string]string `json:"vote_failures"`
	Failure      string            `json:"failure"`
}

// DashboardMap is the network map, its parameters and the pending update.
type DashboardMap struct {
	ParametersHash string              `json:"parameters_hash"`
	Parameters     json.RawMessage     `json:"parameters"`
	NodeInfos      []DashboardNodeInfo `json:"node_infos"`
	Update         *DashboardUpdate    `json:"update"`
}

// DashboardNodeInfo is one NodeInfo of the map.
type DashboardNodeInfo struct {
	Hash   string          `json:"hash"`
	NodeID string          `json:"node_id"`
	Info   netmap.NodeInfo `json:"info"`
}

// DashboardUpdate is the pending parameters update.
type DashboardUpdate struct {
	Hash        string          `json:"hash"`
	Description string          `json:"description"`
	Deadline    string          `json:"deadline"`
	Parameters  json.RawMessage `json:"parameters"`
	Accepted    []Accepted      `json:"accepted"`
	Pending     []string        `json:"pending"`
}

// dashboardState reads every part, each under ctx; a failed part is named.
func (h *HTTP) dashboardState(ctx context.Context) DashboardState {
	s := DashboardState{Errors: map[string]string{}, Proposals: []DashboardProposal{}, Members: []projections.Member{},
		Nodes: []projections.NodeView{}, Ledger: []LedgerEntry{}}
	failed := func(part string, err error) {
		s.Errors[part] = engine.AsError(err).Code + ": " + engine.AsError(err).Message
	}
	var err error
	if s.Network, err = h.svc.Network(ctx); err != nil {
		failed("network", err)
	}
	s.Network.ServiceCertificate = strings.TrimSpace(s.Network.ServiceCertificate)
	if h.observed != nil {
		s.Leader, s.View = h.observed.Leadership()
	}
	if v, err := h.svc.Version(ctx); err == nil {
		s.Version = &v
	} else {
		failed("version", err)
	}
	if props, _, err := h.svc.Proposals(ctx, "", projections.Page{Limit: dashboardProposals}); err == nil {
		for _, p := range props {
			dp := DashboardProposal{ProposalID: p.ProposalID, ProposerID: p.ProposerID, State: p.State, CreatedTxID: p.CreatedTxID,
				Ballots: p.Ballots, FinalVotes: p.FinalVotes, VoteFailures: map[string]string{}}
			var body struct {
				Actions json.RawMessage `json:"actions"`
			}
			if json.Unmarshal([]byte(p.Body), &body) == nil {
				dp.Actions = body.Actions
			}
			for m, f := range p.VoteFailures {
				dp.VoteFailures[m] = f.Reason
			}
			if p.Failure != nil {
				b, _ := json.Marshal(p.Failure)
				dp.Failure = string(b)
			}
			s.Proposals = append(s.Proposals, dp)
		}
	} else {
		failed("proposals", err)
	}
	if ms, _, err := h.svc.Members(ctx, projections.Page{Limit: dashboardMembers}); err == nil {
		s.Members = append(s.Members, ms...)
	} else {
		failed("members", err)
	}
	if ns, _, err := h.svc.NodeList(ctx, "", "", projections.Page{}); err == nil {
		s.Nodes = append(s.Nodes, ns...)
	} else {
		failed("nodes", err)
	}
	if jp, err := h.svc.JoinPolicies(ctx); err == nil {
		s.JoinPolicies = &jp
	} else {
		failed("join_policies", err)
	}
	if jp, ok := h.svc.(JoinPolicySource); ok {
		if src, err := jp.JoinPolicySource(ctx); err == nil {
			s.JoinPolicy = src
		} else {
			failed("join_policy", err)
		}
	}
	if nm, ok := h.svc.(NetworkMap); ok {
		if m, err := dashboardMap(ctx, nm); err == nil {
			s.Map = m
		} else {
			failed("network_map", err)
		}
	}
	if lt, ok := h.svc.(LedgerTail); ok {
		if tail, err := lt.LedgerTail(ctx, dashboardLedgerTail); err == nil {
			s.Ledger = tail
		} else {
			failed("ledger", err)
		}
	}
	return s
}

func dashboardMap(ctx context.Context, nm NetworkMap) (*DashboardMap, error) {
	p, err := mapPayload(ctx, nm)
	if err != nil {
		return nil, err
	}
	m := &DashboardMap{ParametersHash: p.NetworkParametersHash, NodeInfos: []DashboardNodeInfo{}}
	if m.Parameters, err = parametersJSON(ctx, nm, p.NetworkParametersHash); err != nil {
		return nil, err
	}
	infos, err := nm.NodeInfos(ctx)
	if err != nil {
		return nil, err
	}
	for _, hb := range infos {
		if pi, err := netmap.ParseNodeInfo(hb.Signed, netmap.DefaultLimits()); err == nil {
			m.NodeInfos = append(m.NodeInfos, DashboardNodeInfo{Hash: pi.Hash, NodeID: pi.NodeID, Info: pi.Info})
		}
	}
	if u := p.ParametersUpdate; u != nil {
		du := &DashboardUpdate{Hash: u.NewParametersHash, Description: u.Description, Deadline: u.UpdateDeadline}
		if du.Parameters, err = parametersJSON(ctx, nm, u.NewParametersHash); err != nil {
			return nil, err
		}
		a, err := nm.Acceptances(ctx, "")
		if err != nil {
			return nil, err
		}
		du.Accepted, du.Pending = a.Accepted, a.Pending
		m.Update = du
	}
	return m, nil
}

// parametersJSON is the payload of the signed parameters with that hash.
func parametersJSON(ctx context.Context, nm NetworkMap, hash string) (json.RawMessage, error) {
	if hash == "" {
		return json.RawMessage("null"), nil
	}
	signed, err := nm.SignedParameters(ctx, hash)
	if err != nil {
		return nil, err
	}
	msg, err := cose.DecodeSign1(signed)
	if err != nil {
		return nil, err
	}
	if !json.Valid(msg.Payload) {
		return nil, engine.Errorf(engine.KindInternal, "InvalidParameters", "parameters %s are not JSON", hash)
	}
	return msg.Payload, nil
}

// getUIState serves DashboardState with an ETag; 304 when unchanged.
func (h *HTTP) getUIState(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), scrapeTimeout)
	defer cancel()
	b, err := json.Marshal(h.dashboardState(ctx))
	if err != nil {
		h.fail(w, err)
		return
	}
	sum := sha256.Sum256(b)
	etag := hex.EncodeToString(sum[:16])
	match, err := ifNoneMatch(r.Header.Values("If-None-Match"), etag)
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("ETag", `"`+etag+`"`)
	w.Header().Set("Cache-Control", "no-cache")
	if match {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeJSONBytes(w, http.StatusOK, b)
}

// uiPages are the dashboard's page URLs (below /ui/); "receipt/" and
// "proposals/" take an id after them.
var uiPages = map[string]bool{"": true, "proposals": true, "members": true, "nodes": true, "code": true, "map": true, "ledger": true}

func (h *HTTP) uiRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /ui", h.getUIPage)
	mux.HandleFunc("GET /ui/{page...}", h.getUIPage)
	mux.HandleFunc("GET /ui/api/state", h.getUIState)
}

// getUIPage serves an asset, or the page shell for a page URL (the script
// renders the page the URL names), or the shell with 404 for anything else.
func (h *HTTP) getUIPage(w http.ResponseWriter, r *http.Request) {
	page := strings.TrimSuffix(r.PathValue("page"), "/")
	status := http.StatusOK
	name := "index.html"
	switch {
	case uiPages[page]:
	case isUIItem(page, "receipt/"), isUIItem(page, "proposals/"):
	case path.Ext(page) != "" && !strings.Contains(page, "/"):
		if _, err := fs.Stat(ui.FS, page); err == nil && page != "index.html" {
			name = page
		} else {
			status = http.StatusNotFound
		}
	default:
		status = http.StatusNotFound
	}
	b, err := fs.ReadFile(ui.FS, name)
	if err != nil {
		h.fail(w, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", uiContentType(name))
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	// No inline script or style, nothing from elsewhere: hostile text that
	// slipped into the DOM could not run.
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	w.Write(b)
}

func isUIItem(page, prefix string) bool {
	id, ok := strings.CutPrefix(page, prefix)
	return ok && id != "" && !strings.Contains(id, "/") && len(id) <= 80
}

func uiContentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	default:
		return "text/html; charset=utf-8"
	}
}

package handlers

import (
	"context"
	"net/http"

	"github.com/gavelhq/gavel/engine/nodes"
	"github.com/gavelhq/gavel/projections"
)

// SubjectNodeJoin is a node's join over NATS (the body of POST /node/join).
const SubjectNodeJoin = "gavel.submit.node.join"

// Nodes is the network of nodes: joins, the node table, deletes.
type Nodes interface {
	// JoinNode checks a node's signed join request and commits it (the node
	// is Pending) or answers its poll ({node_id, node_status,
	// node_certificate once Trusted}).
	JoinNode(ctx context.Context, raw []byte) ([]byte, error)
	// DeleteNode removes a retired node whose retirement is committed.
	DeleteNode(ctx context.Context, id string) error
	// NodeList and RemovableNodes answer one page (projections.Page{}:
	// all) and whether more follow.
	NodeList(ctx context.Context, status, host string, page projections.Page) ([]projections.NodeView, bool, error)
	NodeInfo(ctx context.Context, id string) (projections.NodeView, error)
	RemovableNodes(ctx context.Context, page projections.Page) ([]projections.NodeView, bool, error)
	Version(ctx context.Context) (VersionInfo, error)
}

// VersionInfo is the answer of GET /node/version. Unsafe is true when the
// service accepts evidence that proves nothing about hardware: virtual
// evidence, or a development SEV-SNP root.
type VersionInfo struct {
	GavelVersion string `json:"gavel_version"`
	GojaVersion  string `json:"goja_version"`
	CodeVersion  string `json:"code_version"`
	HostData     string `json:"host_data"`
	Unsafe       bool   `json:"unsafe"`
	Virtual      bool   `json:"virtual_attestation"`
	DevSNPRoot   bool   `json:"dev_snp_root"`
}

// NodeList is CCF's answer of GET /node/network/nodes. CCF's node lists
// have no pages; with ?maxpagesize= or a skipToken (a gavel extension, as
// for the governance lists) one page is answered, and NextLink leads to
// the next.
type NodeList struct {
	Nodes    []projections.NodeView `json:"nodes"`
	NextLink string                 `json:"nextLink,omitempty"`
}

// nodePage is a node list's page: every node, unless the request asks for
// pages.
func (h *HTTP) nodePage(r *http.Request, filter string) (projections.Page, pageToken, error) {
	q := r.URL.Query()
	if !q.Has("maxpagesize") && !q.Has("skipToken") {
		return projections.Page{}, pageToken{}, nil
	}
	return h.page(r, filter)
}

// writeNodes writes one page of a node list.
func (h *HTTP) writeNodes(w http.ResponseWriter, r *http.Request, list []projections.NodeView, more bool, next pageToken) {
	last := ""
	if len(list) > 0 {
		last = list[len(list)-1].NodeID
	}
	h.writeJSON(w, NodeList{Nodes: list, NextLink: nextLink(r, more, last, next)})
}

// networkNodeRoutes adds CCF's node network routes and POST /node/join.
func (h *HTTP) networkNodeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /node/join", h.postJoin)
	mux.HandleFunc("GET /node/network/nodes", h.getNodes)
	mux.HandleFunc("GET /node/network/nodes/{id}", h.getNode)
	mux.HandleFunc("DELETE /node/network/nodes/{id}", h.deleteNode)
	mux.HandleFunc("GET /node/network/removable_nodes", h.getRemovable)
	mux.HandleFunc("GET /node/version", h.getVersion)
}

func (h *HTTP) postJoin(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readCOSE(w, r, nodes.MaxJoinBytes)
	if !ok {
		return
	}
	res, err := h.svc.JoinNode(r.Context(), body)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSONBytes(w, http.StatusOK, res)
}

func (h *HTTP) getNodes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	status, host := q.Get("status"), q.Get("host")
	page, next, err := h.nodePage(r, "nodes?status="+status+"&host="+host)
	if err != nil {
		h.fail(w, err)
		return
	}
	list, more, err := h.svc.NodeList(r.Context(), status, host, page)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeNodes(w, r, list, more, next)
}

func (h *HTTP) getNode(w http.ResponseWriter, r *http.Request) {
	v, err := h.svc.NodeInfo(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeJSON(w, v)
}

func (h *HTTP) deleteNode(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.DeleteNode(r.Context(), r.PathValue("id")); err != nil {
		h.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *HTTP) getRemovable(w http.ResponseWriter, r *http.Request) {
	page, next, err := h.nodePage(r, "removable_nodes")
	if err != nil {
		h.fail(w, err)
		return
	}
	list, more, err := h.svc.RemovableNodes(r.Context(), page)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeNodes(w, r, list, more, next)
}

func (h *HTTP) getVersion(w http.ResponseWriter, r *http.Request) {
	v, err := h.svc.Version(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeJSON(w, v)
}

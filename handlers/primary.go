package handlers

import (
	"context"
	"net/http"

	"github.com/gavelhq/gavel/engine"
)

// HeaderAppliedTxID names, on every answer, the last transaction the
// answering replica had applied: how fresh its reads are.
const HeaderAppliedTxID = "X-Gavel-Applied-Txid"

// maxStepdownBytes bounds POST /node/primary/stepdown.
const maxStepdownBytes = 4 << 10

// Leadership is a replica's role among the service's replicas.
type Leadership interface {
	// IsPrimary says whether this replica sequences now.
	IsPrimary() bool
	// PrimaryID is the primary's node id as this replica knows it.
	PrimaryID() string
	// StepDownSigned hands the primary's lease to the successor named in
	// a request signed by the primary's node key.
	StepDownSigned(ctx context.Context, raw []byte) error
}

// AppliedWaiter waits until a replica has applied a transaction, for
// ?min_txid= (a client reading its own write through another replica).
type AppliedWaiter interface {
	WaitApplied(ctx context.Context, tx engine.TxID) error
}

// PrimaryInfo is GET /node/primary's answer on the primary.
type PrimaryInfo struct {
	PrimaryID string `json:"primary_id"`
}

// leadershipRoutes adds GET /node/primary (200 on the primary, 404
// elsewhere, as CCF) and POST /node/primary/stepdown (gavel's: CCF has none).
func (h *HTTP) leadershipRoutes(mux *http.ServeMux, l Leadership) {
	mux.HandleFunc("GET /node/primary", func(w http.ResponseWriter, r *http.Request) {
		if !l.IsPrimary() {
			h.fail(w, engine.Errorf(engine.KindNotFound, "NotPrimary", "this replica is not the primary; %q is", l.PrimaryID()))
			return
		}
		h.writeJSON(w, PrimaryInfo{PrimaryID: l.PrimaryID()})
	})
	mux.HandleFunc("POST /node/primary/stepdown", func(w http.ResponseWriter, r *http.Request) {
		body, ok := h.readCOSE(w, r, maxStepdownBytes)
		if !ok {
			return
		}
		if err := l.StepDownSigned(r.Context(), body); err != nil {
			h.fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// waitMinTxID holds a request with ?min_txid= until the replica has
// applied that transaction (bounded; then a typed 503). It reports false
// when it answered the request itself.
func (h *HTTP) waitMinTxID(w http.ResponseWriter, r *http.Request) bool {
	raw := r.URL.Query().Get("min_txid")
	if raw == "" {
		return true
	}
	tx, err := engine.ParseTxID(raw)
	if err != nil {
		h.fail(w, err)
		return false
	}
	if aw, ok := h.svc.(AppliedWaiter); ok {
		if err := aw.WaitApplied(r.Context(), tx); err != nil {
			h.fail(w, err)
			return false
		}
	}
	return true
}

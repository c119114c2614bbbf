package handlers

import (
	"net/http"

	"github.com/gavelhq/gavel/engine"
)

// nodeRoutes adds CCF's node routes for transaction status: /node/tx
// ({"transaction_id", "status"}) and /node/commit ({"transaction_id"}).
func (h *HTTP) nodeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /node/tx", h.getNodeTx)
	mux.HandleFunc("GET /node/commit", h.getNodeCommit)
}

func (h *HTTP) getNodeTx(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("transaction_id")
	if raw == "" {
		h.fail(w, engine.Errorf(engine.KindInvalid, "MissingTransactionId", "a transaction_id is required"))
		return
	}
	tx, err := engine.ParseTxID(raw)
	if err != nil {
		h.fail(w, err)
		return
	}
	status, err := h.svc.TransactionStatus(r.Context(), tx)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeJSON(w, map[string]string{"transaction_id": tx.String(), "status": status})
}

func (h *HTTP) getNodeCommit(w http.ResponseWriter, r *http.Request) {
	tx, err := h.svc.Committed(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeJSON(w, map[string]string{"transaction_id": tx.String()})
}

// setTxID names, on every answer, the transaction its state was read at:
// the last committed one, unless the route names the entry it wrote.
func (h *HTTP) setTxID(w http.ResponseWriter, r *http.Request) {
	if tx, err := h.svc.Committed(r.Context()); err == nil && tx.Seqno > 0 {
		w.Header().Set(HeaderTxID, tx.String())
		w.Header().Set(HeaderAppliedTxID, tx.String())
	}
}

package handlers

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gavelhq/gavel/engine"
)

// SCITT registration as scitt-ccf-ledger answers it to clients that do not
// ask for SCRAPI v09 (pyscitt falls back to it, .NET clients use it): POST
// /entries answers 202 with an operation to poll (CBOR, Location
// /operations/{id}); the operation is "running" until a signature covers
// the entry and "succeeded" (with its EntryId and Location /entries/{id})
// once its receipt can be had. The operation id is the entry's txid.

const (
	contentTypeCBOR = "application/cbor"
	// HeaderTxID is CCF's transaction id header, on every answer.
	HeaderTxID = "x-ms-ccf-transaction-id"
)

// Operation is scitt-ccf-ledger's operation body (CBOR, text keys).
type Operation struct {
	OperationID string `cbor:"OperationId" json:"OperationId"`
	Status      string `cbor:"Status" json:"Status"`
	EntryID     string `cbor:"EntryId,omitempty" json:"EntryId,omitempty"`
}

// Operation states.
const (
	OperationRunning   = "running"
	OperationSucceeded = "succeeded"
)

func (h *HTTP) entryRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /entries", h.postEntry)
	mux.HandleFunc("GET /entries", h.findEntry)
	mux.HandleFunc("GET /entries/{txid}", h.getEntry)
	mux.HandleFunc("GET /entries/{txid}/receipt", h.getEntryReceipt)
	mux.HandleFunc("GET /entries/{txid}/statement", h.getEntryStatement)
	mux.HandleFunc("GET /operations/{id}", h.getOperation)
}

func (h *HTTP) postEntry(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readCOSE(w, r, h.limits.MaxStatementBytes)
	if !ok {
		return
	}
	res, err := h.svc.RegisterStatement(r.Context(), body)
	if err != nil {
		h.fail(w, err)
		return
	}
	var reg struct {
		TxID string `json:"txid"`
	}
	if err := json.Unmarshal(res, &reg); err != nil || reg.TxID == "" {
		h.fail(w, engine.Errorf(engine.KindInternal, "InternalError", "registration answered %q", res))
		return
	}
	w.Header().Set(HeaderTxID, reg.TxID)
	w.Header().Set("Location", "/operations/"+reg.TxID)
	w.Header().Set("Retry-After", "1")
	writeCBOR(w, http.StatusAccepted, Operation{OperationID: reg.TxID, Status: OperationRunning})
}

// getOperation answers 202 while the entry's receipt is pending and 200
// with the entry id once it is not. An id that is no committed statement
// is scitt-ccf-ledger's 404 NotFound; a malformed one its 400 InvalidInput.
func (h *HTTP) getOperation(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("id")
	tx, err := engine.ParseTxID(raw)
	if err != nil {
		h.fail(w, engine.Errorf(engine.KindInvalid, "InvalidInput", "Invalid Operation ID: %s", truncateParam(raw)))
		return
	}
	ok, err := h.svc.IsStatement(r.Context(), tx)
	if err != nil {
		h.fail(w, err)
		return
	}
	if !ok {
		h.fail(w, engine.Errorf(engine.KindNotFound, "NotFound", "Invalid operation ID %s", tx))
		return
	}
	_, err = h.svc.Receipt(r.Context(), tx)
	switch {
	case engine.KindOf(err) == engine.KindPending:
		w.Header().Set("Retry-After", "1")
		writeCBOR(w, http.StatusAccepted, Operation{OperationID: tx.String(), Status: OperationRunning})
	case err != nil:
		h.fail(w, err)
	default:
		w.Header().Set("Location", "/entries/"+tx.String())
		writeCBOR(w, http.StatusOK, Operation{OperationID: tx.String(), Status: OperationSucceeded, EntryID: tx.String()})
	}
}

// findEntry is GET /entries?claims_digest=HEX: the txid of a statement's
// latest registration, so that a client whose registration failed
// ambiguously (a reset connection) can learn whether it landed. A gavel
// extension of scitt-ccf-ledger's API.
func (h *HTTP) findEntry(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("claims_digest")
	b, err := hex.DecodeString(raw)
	if err != nil || len(b) != len(engine.Digest{}) {
		h.fail(w, engine.Errorf(engine.KindInvalid, "InvalidInput", "claims_digest must be 64 hex digits, got %q", truncateParam(raw)))
		return
	}
	tx, ok, err := h.svc.StatementByClaimsDigest(r.Context(), engine.Digest(b))
	if err != nil {
		h.fail(w, err)
		return
	}
	if !ok {
		h.fail(w, engine.Errorf(engine.KindNotFound, "NotFound", "no registered statement has claims digest %s", raw))
		return
	}
	w.Header().Set("Location", "/entries/"+tx.String())
	out, _ := json.Marshal(map[string]string{"txid": tx.String()})
	writeJSONBytes(w, http.StatusOK, out)
}

// getEntry is the entry's receipt (scitt-ccf-ledger's GET /entries/{id}).
func (h *HTTP) getEntry(w http.ResponseWriter, r *http.Request) {
	h.serveCOSE(w, r, r.PathValue("txid"), h.svc.Receipt)
}

func (h *HTTP) getEntryReceipt(w http.ResponseWriter, r *http.Request) {
	h.serveCOSE(w, r, r.PathValue("txid"), h.svc.Receipt)
}

func (h *HTTP) getEntryStatement(w http.ResponseWriter, r *http.Request) {
	h.serveCOSE(w, r, r.PathValue("txid"), h.svc.TransparentStatement)
}

func writeCBOR(w http.ResponseWriter, status int, v any) {
	b, err := engine.CBOR.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, nil
	}
	w.Header().Set("Content-Type", contentTypeCBOR)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

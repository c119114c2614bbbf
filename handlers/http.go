package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/schemas"
)

const contentTypeCOSE = "application/cose"

// HTTP serves gavel's HTTP routes.
type HTTP struct {
	svc    Service
	limits Limits
	logger *slog.Logger
}

// NewHTTP builds the HTTP handler.
func NewHTTP(svc Service, limits Limits, logger *slog.Logger) http.Handler {
	h := &HTTP{svc: svc, limits: limits, logger: logger}
	mux := http.NewServeMux()
	h.entryRoutes(mux)
	mux.HandleFunc("GET /receipt", h.getReceipt)
	mux.HandleFunc("GET /node/network", h.getNetwork)
	h.nodeRoutes(mux)
	h.govRoutes(mux)
	mux.Handle("GET /schemas/", http.StripPrefix("/schemas/", http.FileServerFS(schemas.FS)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, engine.Errorf(engine.KindNotFound, "ResourceNotFound", "no route %s %s", r.Method, r.URL.Path))
	})
	return h.withTxID(mux)
}

func (h *HTTP) getReceipt(w http.ResponseWriter, r *http.Request) {
	h.serveCOSE(w, r, r.URL.Query().Get("transaction_id"), h.svc.Receipt)
}

func (h *HTTP) serveCOSE(w http.ResponseWriter, r *http.Request, txid string,
	get func(context.Context, engine.TxID) ([]byte, error)) {
	if txid == "" {
		h.fail(w, engine.Errorf(engine.KindInvalid, "MissingTransactionId", "a transaction id is required"))
		return
	}
	tx, err := engine.ParseTxID(txid)
	if err != nil {
		h.fail(w, err)
		return
	}
	b, err := get(r.Context(), tx)
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", contentTypeCOSE)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func (h *HTTP) getNetwork(w http.ResponseWriter, r *http.Request) {
	info, err := h.svc.Network(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	b, err := json.Marshal(info)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSONBytes(w, http.StatusOK, b)
}

// fail writes err as a JSON error; a pending answer carries Retry-After.
func (h *HTTP) fail(w http.ResponseWriter, err error) {
	status, body := errorBody(err, h.logger)
	if status == http.StatusAccepted || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	// CCF's error header, and its challenge on authentication failures.
	w.Header().Set("x-ms-error-code", engine.AsError(err).Code)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `COSE-SIGN1 realm="Signed request access"`)
	}
	writeJSONBytes(w, status, body)
}

func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte("\n"))
}

func requireContentType(r *http.Request, want string) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != want {
		return engine.Errorf(engine.KindUnsupportedMedia, "UnsupportedContentType",
			"content type %q is not %s", ct, want)
	}
	return nil
}

// readBody reads at most limit bytes; a longer body is refused whole.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, engine.Errorf(engine.KindTooLarge, "RequestTooLarge", "body of %d bytes is over the limit of %d", r.ContentLength, limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, engine.Errorf(engine.KindTooLarge, "RequestTooLarge", "body is over the limit of %d bytes", limit)
	}
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, "TruncatedBody", err, "body could not be read")
	}
	if len(b) == 0 {
		return nil, engine.Errorf(engine.KindInvalid, "EmptyBody", "the body is empty")
	}
	return b, nil
}

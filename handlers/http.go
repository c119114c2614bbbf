package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/schemas"
)

const contentTypeCOSE = "application/cose"

// HTTP serves gavel's HTTP routes. Every answer it writes, the mux's own
// 404 and 405 included, is JSON; paths are cleaned, never redirected.
type HTTP struct {
	svc    Service
	limits Limits
	logger *slog.Logger
	mux    *http.ServeMux
	edge   *Listener // reported in /node/network when set

	// Observation (metrics.go, health.go): observed is svc when it
	// reports its write path, metrics what /metrics serves.
	observed       Observed
	metrics        *Metrics
	metricsHandler http.Handler
}

// NewHTTP builds the HTTP handler.
func NewHTTP(svc Service, limits Limits, logger *slog.Logger) *HTTP {
	h := &HTTP{svc: svc, limits: limits, logger: logger, mux: http.NewServeMux()}
	h.observed, _ = svc.(Observed)
	h.UseMetrics(NewMetrics())
	mux := h.mux
	h.entryRoutes(mux)
	mux.HandleFunc("GET /receipt", h.getReceipt)
	mux.HandleFunc("GET /node/network", h.getNetwork)
	h.nodeRoutes(mux)
	h.networkNodeRoutes(mux)
	h.govRoutes(mux)
	if nm, ok := svc.(NetworkMap); ok {
		h.netmapRoutes(mux, nm)
	}
	if l, ok := svc.(Leadership); ok {
		h.leadershipRoutes(mux, l)
	}
	// "/schemas" itself too, or the mux would redirect it to "/schemas/".
	mux.HandleFunc("GET /schemas", h.getSchema)
	mux.HandleFunc("GET /schemas/{path...}", h.getSchema)
	h.metricsRoutes(mux)
	h.healthRoutes(mux)
	mux.HandleFunc("GET /openapi.json", h.getOpenAPI)
	h.uiRoutes(mux)
	return h
}

// ReportConnections adds l's counts to /node/network.
func (h *HTTP) ReportConnections(l *Listener) { h.edge = l }

// ServeHTTP cleans the path (the mux would answer "//node/network" with a
// redirect) and answers in JSON where the mux has no route: 404, or 405
// with the mux's Allow header.
func (h *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.waitMinTxID(w, r) {
		return
	}
	h.setTxID(w, r)
	if r.RequestURI == "*" {
		w.Header().Set("Connection", "close")
		h.fail(w, engine.Errorf(engine.KindInvalid, "MalformedRequest", "the request target * is for OPTIONS only"))
		return
	}
	if r.Method != http.MethodConnect {
		if esc := r.URL.EscapedPath(); cleanPath(esc) != esc {
			clean := cleanPath(esc)
			p, err := url.PathUnescape(clean)
			if err != nil {
				h.fail(w, engine.Wrap(engine.KindInvalid, "MalformedRequest", err, "bad path"))
				return
			}
			u := *r.URL
			u.Path, u.RawPath = p, clean
			r2 := *r
			r2.URL = &u
			r = &r2
		}
	}
	_, pattern := h.mux.Handler(r)
	sw := &statusWriter{ResponseWriter: w}
	defer func() { h.metrics.countRequest(pattern, sw.status) }()
	if pattern == "" {
		h.noRoute(sw, r)
		return
	}
	h.mux.ServeHTTP(sw, r)
}

// statusWriter keeps the status of an answer, for the request counter.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		f.Flush()
	}
}

// noRoute answers what the mux would answer in plain text: 405 with Allow
// when another method has the path, else 404.
func (h *HTTP) noRoute(w http.ResponseWriter, r *http.Request) {
	handler, _ := h.mux.Handler(r)
	rec := &headerRecorder{header: http.Header{}}
	handler.ServeHTTP(rec, r)
	if rec.status == http.StatusMethodNotAllowed {
		allow := rec.header.Get("Allow")
		w.Header().Set("Allow", allow)
		h.fail(w, engine.Errorf(engine.KindMethodNotAllowed, "MethodNotAllowed", "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow))
		return
	}
	h.fail(w, errNoRoute(r))
}

func errNoRoute(r *http.Request) error {
	return engine.Errorf(engine.KindNotFound, "ResourceNotFound", "no route %s %s", r.Method, r.URL.Path)
}

// headerRecorder keeps the status and headers of the mux's own error
// handlers and drops their plain-text body.
type headerRecorder struct {
	header http.Header
	status int
}

func (r *headerRecorder) Header() http.Header { return r.header }
func (r *headerRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}
func (r *headerRecorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return len(b), nil
}

// cleanPath is net/http's path cleaning: one slash between segments, no
// dot segments, the trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// getSchema serves a schema file, or the list of them for a folder.
func (h *HTTP) getSchema(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSuffix(r.PathValue("path"), "/")
	if name == "" {
		name = "."
	}
	info, err := fs.Stat(schemas.FS, name)
	if err != nil {
		h.fail(w, engine.Errorf(engine.KindNotFound, "ResourceNotFound", "no schema %s", r.URL.Path))
		return
	}
	if info.IsDir() {
		var names []string
		fs.WalkDir(schemas.FS, name, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				names = append(names, p)
			}
			return err
		})
		b, _ := json.Marshal(map[string][]string{"schemas": names})
		writeJSONBytes(w, http.StatusOK, b)
		return
	}
	b, err := fs.ReadFile(schemas.FS, name)
	if err != nil {
		h.fail(w, err)
		return
	}
	ct := "application/json"
	if !strings.HasSuffix(name, ".json") {
		ct = "text/plain; charset=utf-8" // the CDDL
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
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
	h.metrics.countReceipt(r.Pattern)
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
	if h.edge != nil {
		st := h.edge.Stats()
		info.HTTPConnections = &st
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
// readCOSE reads a COSE request body of at most limit bytes; when it
// cannot, it answers the request with the typed error and reports false.
func (h *HTTP) readCOSE(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	if err := requireContentType(r, contentTypeCOSE); err != nil {
		h.fail(w, err)
		return nil, false
	}
	body, err := readBody(w, r, limit)
	if err != nil {
		h.fail(w, err)
		return nil, false
	}
	return body, true
}

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

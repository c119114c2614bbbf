package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gavelhq/gavel/engine"
)

// probeTimeout bounds a readiness probe's reads: a probe answers
// quickly or says it could not read.
const probeTimeout = time.Second

// Health is the answer of /healthz and /readyz.
type Health struct {
	Status string `json:"status"` // "ok", "ready" or "not_ready"
	// Reason is a stable code when not ready (StorageFull,
	// SequencerStopped, ReadTimeout…), Message says more.
	Reason  string            `json:"reason,omitempty"`
	Message string            `json:"message,omitempty"`
	Checks  map[string]string `json:"checks,omitempty"` // "read", "write" → "ok" or the reason
}

// Health statuses.
const (
	HealthOK       = "ok"
	HealthReady    = "ready"
	HealthNotReady = "not_ready"
)

func (h *HTTP) healthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", h.getHealthz)
	mux.HandleFunc("GET /readyz", h.getReadyz)
}

// getHealthz says the process serves HTTP; it reads nothing.
func (h *HTTP) getHealthz(w http.ResponseWriter, r *http.Request) {
	writeHealth(w, http.StatusOK, Health{Status: HealthOK})
}

// getReadyz says whether reads can be served and, with ?write=1, whether
// writes can: the replica holds a writable primary path.
func (h *HTTP) getReadyz(w http.ResponseWriter, r *http.Request) {
	write := false
	switch v := r.URL.Query().Get("write"); v {
	case "", "0", "false":
	case "1", "true":
		write = true
	default:
		h.fail(w, errBadQuery("write", v))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	res := readiness(ctx, h.svc, h.observed, write)
	status := http.StatusOK
	if res.Status != HealthReady {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	writeHealth(w, status, res)
}

// readiness runs the probe's checks. The read check is one read of the
// committed position (memory); the write check is the write path's fault
// and whether this replica holds it.
func readiness(ctx context.Context, svc Service, o Observed, write bool) Health {
	res := Health{Status: HealthReady, Checks: map[string]string{}}
	notReady := func(check, code, msg string) {
		res.Checks[check] = code
		if res.Status == HealthReady {
			res.Status, res.Reason, res.Message = HealthNotReady, code, msg
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := svc.Committed(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			e := engine.AsError(err)
			notReady("read", e.Code, e.Message)
		} else {
			res.Checks["read"] = HealthOK
		}
	case <-ctx.Done():
		notReady("read", "ReadTimeout", "the committed position could not be read within "+probeTimeout.String())
	}
	if !write {
		return res
	}
	switch {
	case o == nil:
		notReady("write", "NotObserved", "this service does not report its write path")
	default:
		if f := o.Sequencing().Fault; f != nil {
			notReady("write", f.Code, f.Message)
		} else {
			res.Checks["write"] = HealthOK
		}
	}
	return res
}

func writeHealth(w http.ResponseWriter, status int, v Health) {
	b, _ := json.Marshal(v)
	w.Header().Set("Cache-Control", "no-store")
	writeJSONBytes(w, status, b)
}

func errBadQuery(name, v string) error {
	return engine.Errorf(engine.KindInvalid, "InvalidQueryParameterValue", "%s: %q is not one of 0, 1, true, false", name, truncateParam(v))
}

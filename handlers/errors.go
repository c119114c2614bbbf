package handlers

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/gavelhq/gavel/engine"
)

// Status maps an error's Kind to its HTTP status. It is the only place
// where that mapping lives; NATS replies carry the same status in a header.
func Status(err error) int {
	switch engine.KindOf(err) {
	case engine.KindInvalid:
		return http.StatusBadRequest
	case engine.KindUnauthorized:
		return http.StatusUnauthorized
	case engine.KindForbidden:
		return http.StatusForbidden
	case engine.KindNotFound:
		return http.StatusNotFound
	case engine.KindConflict:
		return http.StatusConflict
	case engine.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case engine.KindUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case engine.KindPending:
		return http.StatusAccepted
	case engine.KindUnavailable:
		return http.StatusServiceUnavailable
	case engine.KindMethodNotAllowed:
		return http.StatusMethodNotAllowed
	default:
		return http.StatusInternalServerError
	}
}

// ErrorBody is the JSON form of every error: {"error":{"code","message"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    string               `json:"code"`
	Message string               `json:"message"`
	Details []engine.ErrorDetail `json:"details,omitempty"`
}

// errorBody renders err for the wire. Internal errors say nothing about
// their cause, which goes to the log instead.
func errorBody(err error, logger *slog.Logger) (int, []byte) {
	e := engine.AsError(err)
	status := Status(e)
	msg := e.Message
	if e.Err != nil && e.Kind != engine.KindInternal {
		msg += ": " + e.Err.Error()
	}
	switch {
	case status == http.StatusServiceUnavailable:
		// A refusal while the write path is faulty or busy: the replica logs
		// the fault once, not once per refused request.
		logger.Debug("request refused", slog.String("code", e.Code), slog.Any("err", err))
	case status >= 500:
		logger.Error("request failed", slog.String("code", e.Code), slog.Any("err", err))
	}
	b, _ := json.Marshal(ErrorBody{Error: ErrorDetail{Code: e.Code, Message: msg, Details: e.Details}})
	return status, b
}

func errTooLarge(n int, limit int64) error {
	return engine.Errorf(engine.KindTooLarge, "RequestTooLarge", "body of %d bytes is over the limit of %d", n, limit)
}

func errEmpty() error { return engine.Errorf(engine.KindInvalid, "EmptyBody", "the body is empty") }

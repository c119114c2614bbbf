package engine

import (
	"errors"
	"fmt"
)

// Kind classifies an error by how a caller should react. Handlers map a Kind
// to a status code in one place (handlers.status); nothing else does.
type Kind int

const (
	// KindInternal is a fault of gavel itself; details stay in the log.
	KindInternal Kind = iota
	// KindInvalid is malformed or unacceptable input: fix the request.
	KindInvalid
	// KindUnauthorized means the signer is unknown or its signature is bad.
	KindUnauthorized
	// KindForbidden means a known signer may not do this.
	KindForbidden
	// KindNotFound names something that does not exist.
	KindNotFound
	// KindConflict means the request clashes with current state.
	KindConflict
	// KindTooLarge is a body or field over a named limit.
	KindTooLarge
	// KindUnsupportedMedia is a wrong Content-Type.
	KindUnsupportedMedia
	// KindPending means the answer exists later: retry after a pause.
	KindPending
	// KindUnavailable means the service cannot take the request now.
	KindUnavailable
	// KindMethodNotAllowed is a known path asked with a method it lacks.
	KindMethodNotAllowed
)

// Error is gavel's typed error: a stable machine-readable Code (CCF style,
// e.g. "InvalidSignature"), a Kind that fixes the status, and a message.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Err     error // cause, if any
	// Sentinel is what errors.Is matches besides the cause chain (e.g.
	// sequencer.ErrNotPrimary), so callers branch on a value, not a Code.
	Sentinel error
	// Details are CCF's error details: the individual reasons behind the
	// message (a refused join carries gavel's and the policy's).
	Details []ErrorDetail
}

// ErrorDetail is one detail of an error, as CCF's ODataError details.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is e's sentinel or in the sentinel's own chain.
func (e *Error) Is(target error) bool { return e.Sentinel != nil && errors.Is(e.Sentinel, target) }

// Marked sets e's sentinel and returns e.
func (e *Error) Marked(sentinel error) *Error {
	e.Sentinel = sentinel
	return e
}

// Errorf builds a typed error.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap builds a typed error around a cause; the cause's text joins the message.
func Wrap(kind Kind, code string, err error, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// AsError returns the typed error inside err, or an internal one.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: KindInternal, Code: "InternalError", Message: "internal error", Err: err}
}

// KindOf reports the Kind of err (KindInternal for untyped errors).
func KindOf(err error) Kind { return AsError(err).Kind }

package constitution

import (
	"errors"
	"strings"

	"github.com/dop251/goja"
	"github.com/gavelhq/gavel/engine"
)

// Error codes. Script failures are KindInvalid: the script, not gavel, is at
// fault, and the proposal or ballot fails.
const (
	CodeConstitutionCompileError = "ConstitutionCompileError"
	CodeBallotCompileError       = "BallotCompileError"
	CodeScriptTimeout            = "ScriptTimeout"
	CodeScriptThrew              = "ScriptThrew"
	CodeScriptStackOverflow      = "ScriptStackOverflow"
	CodeScriptMemoryLimit        = "ScriptMemoryLimit"
	CodeScriptBadResult          = "ScriptBadResult"
	// CodeScriptInternalError is a fault of the runtime itself (a goja panic).
	CodeScriptInternalError = "ScriptInternalError"
	// CodeStateReadFailed is a StateReader error; the call is aborted so the
	// script can never observe (and branch on) a storage failure.
	CodeStateReadFailed = "StateReadFailed"
	// CodeMissingEntryTime means Env.Time was not set.
	CodeMissingEntryTime = "MissingEntryTime"
)

// abortPanic unwinds a script from a host function; goja cannot catch it
// (it is not a JavaScript value), so no try/finally in the script runs.
type abortPanic struct{ err *engine.Error }

func errTimeout(l Limits) *engine.Error {
	return engine.Errorf(engine.KindInvalid, CodeScriptTimeout, "script exceeded its time budget of %v", l.Timeout)
}

func errMemory(l Limits) *engine.Error {
	return engine.Errorf(engine.KindInvalid, CodeScriptMemoryLimit, "script grew the heap by more than %d bytes", l.MaxHeapGrowth)
}

func badResult(format string, args ...any) *engine.Error {
	return engine.Errorf(engine.KindInvalid, CodeScriptBadResult, format, args...)
}

// classify turns what goja returned or panicked with into a typed error.
func classify(err error) *engine.Error {
	var typed *engine.Error
	var interrupted *goja.InterruptedError
	var overflow *goja.StackOverflowError
	var exception *goja.Exception
	switch {
	case errors.As(err, &interrupted):
		if e, ok := interrupted.Value().(*engine.Error); ok {
			return e
		}
		return engine.Wrap(engine.KindInternal, CodeScriptInternalError, err, "script interrupted")
	case errors.As(err, &overflow):
		return engine.Errorf(engine.KindInvalid, CodeScriptStackOverflow, "script exceeded the call stack limit")
	case errors.As(err, &exception):
		return engine.Errorf(engine.KindInvalid, CodeScriptThrew, "%s", exceptionText(exception))
	case errors.As(err, &typed):
		return typed
	default:
		return engine.Wrap(engine.KindInternal, CodeScriptInternalError, err, "script runtime failed")
	}
}

// exceptionText is the thrown value and where it was thrown, trimmed to a
// size fit for an error message.
func exceptionText(ex *goja.Exception) string {
	s := ex.Error()
	const max = 2048
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.TrimSpace(s)
}

package constitution

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/dop251/goja"
	"github.com/gavelhq/gavel/engine"
)

// Error codes. Script failures are KindInvalid: the script, not gavel, is at
// fault, and the proposal or ballot fails. Their messages are stable: no
// goja stack frames or positions, no esbuild text, nothing that depends on
// the machine, so the auditor re-derives them bit for bit.
const (
	CodeConstitutionCompileError = "ConstitutionCompileError"
	CodeBallotCompileError       = "BallotCompileError"
	CodeScriptBudgetExceeded     = "ScriptBudgetExceeded"
	CodeScriptThrew              = "ScriptThrew"
	CodeScriptStackOverflow      = "ScriptStackOverflow"
	CodeScriptBadResult          = "ScriptBadResult"
	// CodeScriptSafetyLimit is a tripped wall-clock or heap safety net:
	// KindUnavailable, never a result (nothing is written; retry).
	CodeScriptSafetyLimit = "ScriptSafetyLimit"
	// CodeConstitutionNotRepairable is a proposed constitution that does not
	// instantiate, or would not accept a proposal restoring the default.
	CodeConstitutionNotRepairable = "ConstitutionNotRepairable"
	// CodeScriptInternalError is a fault of the runtime itself (a goja panic).
	CodeScriptInternalError = "ScriptInternalError"
	// CodeStateReadFailed is a StateReader error; the call is aborted so the
	// script can never observe (and branch on) a storage failure.
	CodeStateReadFailed = "StateReadFailed"
	// CodeMissingEntryTime means Env.Time was not set.
	CodeMissingEntryTime = "MissingEntryTime"

	// Codes older gavel builds recorded for wall-clock and heap outcomes; an
	// auditor meeting them reports the entry inconclusive.
	CodeLegacyScriptTimeout     = "ScriptTimeout"
	CodeLegacyScriptMemoryLimit = "ScriptMemoryLimit"
)

// ErrSafetyLimit is wrapped by every CodeScriptSafetyLimit error: callers
// test errors.Is(err, ErrSafetyLimit) and refuse the request.
var ErrSafetyLimit = errors.New("a script safety limit tripped")

// abortPanic unwinds a script from a host function; goja cannot catch it
// (it is not a JavaScript value), so no try/finally in the script runs.
type abortPanic struct{ err *engine.Error }

func errTimeout(l Limits) *engine.Error {
	return engine.Wrap(engine.KindUnavailable, CodeScriptSafetyLimit, ErrSafetyLimit,
		"script ran past the wall-clock safety limit of %v; nothing was written, retry later", l.Timeout)
}

func errMemory(l Limits) *engine.Error {
	return engine.Wrap(engine.KindUnavailable, CodeScriptSafetyLimit, ErrSafetyLimit,
		"script grew the heap past the safety limit of %d bytes; nothing was written, retry later", l.MaxHeapGrowth)
}

func errBudget(l Limits) *engine.Error {
	return engine.Errorf(engine.KindInvalid, CodeScriptBudgetExceeded, "script exceeded its budget of %d steps", l.MaxFuel)
}

func badResult(format string, args ...any) *engine.Error {
	return engine.Errorf(engine.KindInvalid, CodeScriptBadResult, format, args...)
}

// classify turns what goja returned or panicked with into a typed error;
// thrown is the text of a thrown value (sb.classify finds it).
func classify(err error, thrown string) *engine.Error {
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
		if thrown == "" {
			thrown = "a value"
		}
		return engine.Errorf(engine.KindInvalid, CodeScriptThrew, "%s", thrown)
	case errors.As(err, &typed):
		return typed
	default:
		return engine.Wrap(engine.KindInternal, CodeScriptInternalError, err, "script runtime failed")
	}
}

// classify is classify with the thrown value rendered by its own
// toString (under the call's budget), without goja's stack trace.
func (sb *sandbox) classify(err error) *engine.Error {
	var exception *goja.Exception
	if !errors.As(err, &exception) {
		return classify(err, "")
	}
	text := "a value that cannot be converted to a string"
	if ex := sb.rt.Try(func() {
		v := exception.Value()
		if v == nil {
			text = "undefined"
			return
		}
		text = v.String()
	}); ex != nil {
		var budget *goja.InterruptedError
		if errors.As(ex, &budget) {
			return classify(ex, "")
		}
	}
	return classify(err, truncate(text, 2048))
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

package constitution

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"

	"github.com/dop251/goja"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/schemas"
)

// installHostAPI defines the globals gavel and console. Everything here
// is deterministic given the call's state; storage errors abort the call
// (they must never be visible to, and caught by, a script).
func (sb *sandbox) installHostAPI() error {
	rt := sb.rt
	gavel := rt.NewObject()
	kv := rt.NewObject()
	sb.method(kv, "get", sb.kvGet)
	sb.method(kv, "has", sb.kvHas)
	sb.method(kv, "keys", sb.kvKeys)
	sb.method(kv, "entries", sb.kvEntries)
	sb.method(kv, "set", sb.kvSet)
	sb.method(kv, "delete", sb.kvDelete)
	schema := rt.NewObject()
	sb.method(schema, "validate", sb.schemaValidate)
	hash := rt.NewObject()
	sb.method(hash, "sha256Hex", sb.sha256Hex)
	pemObj := rt.NewObject()
	sb.method(pemObj, "certDigestHex", sb.certDigestHex)
	constitution := rt.NewObject()
	sb.method(constitution, "check", sb.checkConstitution)
	sb.method(constitution, "checkJoinPolicy", sb.checkJoinPolicy) // joinpolicy.go
	// A fixed order: scripts can list these keys.
	for _, p := range []struct {
		name string
		v    *goja.Object
	}{{"kv", kv}, {"schema", schema}, {"hash", hash}, {"pem", pemObj}, {"constitution", constitution}} {
		if err := gavel.DefineDataProperty(p.name, p.v, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE); err != nil {
			return err
		}
	}
	console := rt.NewObject()
	for _, level := range []string{"log", "info", "warn", "error", "debug"} {
		sb.method(console, level, sb.logger(level))
	}
	g := rt.GlobalObject()
	if err := g.DefineDataProperty("gavel", gavel, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE); err != nil {
		return err
	}
	return g.DefineDataProperty("console", console, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE)
}

// method defines a host function: something a call supplies, which a
// module's top level reaching stops its preparation (prepare.go).
func (sb *sandbox) method(obj *goja.Object, name string, f nativeFunc) {
	fn := sb.rt.ToValue(func(c goja.FunctionCall) goja.Value {
		sb.hostCall()
		return f(c)
	}).(*goja.Object)
	_ = fn.DefineDataProperty("name", sb.rt.ToValue(name), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	_ = obj.DefineDataProperty(name, fn, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
}

func (sb *sandbox) stringArg(c goja.FunctionCall, i int, fn, what string) string {
	v := c.Argument(i)
	if !goja.IsString(v) {
		panic(sb.rt.NewTypeError(fn + ": " + what + " must be a string"))
	}
	return v.String()
}

func (sb *sandbox) stateFailed(err error) {
	panic(abortPanic{engine.Wrap(engine.KindInternal, CodeStateReadFailed, err, "reading governance state failed")})
}

// readable is the one allowlist of tables scripts may read, the same on
// the replica and in the auditor: the governance tables (ReadablePrefix),
// never the engine's own (gavel.*) nor the statements index, which an
// auditor does not keep.
func (sb *sandbox) readable(table string) {
	if !strings.HasPrefix(table, ReadablePrefix) {
		panic(sb.rt.NewTypeError("gavel.kv: only tables named " + ReadablePrefix + "* can be read, not " + table))
	}
}

func (sb *sandbox) read(table, key string) (v []byte, ok bool) {
	sb.readable(table)
	var err error
	sb.inHost(func() { v, ok, err = sb.cur.overlay.get(table, key) })
	if err != nil {
		sb.stateFailed(err)
	}
	sb.chargeSize(int64(len(table) + len(key) + len(v)))
	return v, ok
}

func (sb *sandbox) list(table string) (entries []entry) {
	sb.readable(table)
	var err error
	sb.inHost(func() { entries, err = sb.cur.overlay.entries(table) })
	if err != nil {
		sb.stateFailed(err)
	}
	size := int64(0)
	for _, e := range entries {
		size += int64(len(e.key) + len(e.value))
	}
	sb.chargeSize(size)
	return entries
}

// parseStored turns a stored JSON value into a fresh JavaScript value.
func (sb *sandbox) parseStored(table, key string, raw []byte) goja.Value {
	n, err := parsedJSON.parseBytes(raw)
	return sb.parsed(n, err, sb.limits().MaxDepth)
}

func (sb *sandbox) kvGet(c goja.FunctionCall) goja.Value {
	table := sb.stringArg(c, 0, "gavel.kv.get", "table")
	key := sb.stringArg(c, 1, "gavel.kv.get", "key")
	v, ok := sb.read(table, key)
	if !ok {
		return goja.Undefined()
	}
	return sb.parseStored(table, key, v)
}

func (sb *sandbox) kvHas(c goja.FunctionCall) goja.Value {
	table := sb.stringArg(c, 0, "gavel.kv.has", "table")
	key := sb.stringArg(c, 1, "gavel.kv.has", "key")
	_, ok := sb.read(table, key)
	return sb.rt.ToValue(ok)
}

func (sb *sandbox) kvKeys(c goja.FunctionCall) goja.Value {
	table := sb.stringArg(c, 0, "gavel.kv.keys", "table")
	entries := sb.list(table)
	keys := make([]any, len(entries))
	for i, e := range entries {
		keys[i] = e.key
	}
	return sb.rt.NewArray(keys...)
}

func (sb *sandbox) kvEntries(c goja.FunctionCall) goja.Value {
	table := sb.stringArg(c, 0, "gavel.kv.entries", "table")
	entries := sb.list(table)
	out := make([]any, len(entries))
	for i, e := range entries {
		out[i] = sb.rt.NewArray(e.key, sb.parseStored(table, e.key, e.value))
	}
	return sb.rt.NewArray(out...)
}

func (sb *sandbox) writable(c goja.FunctionCall, fn string) (table, key string) {
	if !sb.cur.apply {
		panic(sb.rt.NewTypeError(fn + " is only available in apply: validate, resolve and ballots are read-only"))
	}
	table = sb.stringArg(c, 0, fn, "table")
	key = sb.stringArg(c, 1, fn, "key")
	if !strings.HasPrefix(table, WritablePrefix) {
		panic(sb.rt.NewTypeError(fn + ": only tables named " + WritablePrefix + "* can be written, not " + table))
	}
	return table, key
}

func (sb *sandbox) kvSet(c goja.FunctionCall) goja.Value {
	table, key := sb.writable(c, "gavel.kv.set")
	text := sb.chargeResult(sb.stringify(c.Argument(2), goja.Undefined(), goja.Undefined()))
	if goja.IsUndefined(text) {
		panic(sb.rt.NewTypeError("gavel.kv.set: the value of " + table + "[" + key + "] has no JSON form"))
	}
	sb.cur.overlay.put(table, key, []byte(text.String()))
	return goja.Undefined()
}

func (sb *sandbox) kvDelete(c goja.FunctionCall) goja.Value {
	table, key := sb.writable(c, "gavel.kv.delete")
	sb.cur.overlay.remove(table, key)
	return goja.Undefined()
}

// schemaValidate returns null, or the schema's message for value.
func (sb *sandbox) schemaValidate(c goja.FunctionCall) goja.Value {
	name := sb.stringArg(c, 0, "gavel.schema.validate", "schema name")
	if !schemas.Has(name) {
		panic(sb.rt.NewTypeError("gavel.schema.validate: no schema named " + name))
	}
	text := sb.chargeResult(sb.stringify(c.Argument(1), goja.Undefined(), goja.Undefined()))
	if goja.IsUndefined(text) {
		return sb.rt.ToValue("value has no JSON form")
	}
	if err := schemas.ValidateJSON(name, []byte(text.String())); err != nil {
		return sb.rt.ToValue(engine.AsError(err).Message)
	}
	return goja.Null()
}

func (sb *sandbox) sha256Hex(c goja.FunctionCall) goja.Value {
	s := sb.stringArg(c, 0, "gavel.hash.sha256Hex", "input")
	sb.chargeSize(int64(len(s)))
	sum := sha256.Sum256([]byte(s))
	return sb.rt.ToValue(hex.EncodeToString(sum[:]))
}

// certDigestHex is the hex SHA-256 of the DER of the first certificate in
// a PEM string: a member's id. It throws on anything but a parseable X.509
// certificate.
func (sb *sandbox) certDigestHex(c goja.FunctionCall) goja.Value {
	s := sb.stringArg(c, 0, "gavel.pem.certDigestHex", "pem")
	sb.chargeSize(int64(len(s)))
	der, err := CertDER(s)
	if err != nil {
		panic(sb.rt.NewTypeError("gavel.pem.certDigestHex: " + err.Error()))
	}
	sum := sha256.Sum256(der)
	return sb.rt.ToValue(hex.EncodeToString(sum[:]))
}

// CertDER returns the DER of the first PEM CERTIFICATE block, checked to
// parse as X.509.
func CertDER(pemText string) ([]byte, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, engine.Errorf(engine.KindInvalid, "InvalidCertificate", "no PEM CERTIFICATE block")
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return nil, engine.Wrap(engine.KindInvalid, "InvalidCertificate", err, "not an X.509 certificate")
	}
	return block.Bytes, nil
}

// checkConstitution returns null if source is a constitution that
// instantiates and keeps governance repairable (CheckRepairable), else a
// stable reason. Compiling costs fuel by source size; the checking calls
// run on the rest of this call's budget.
func (sb *sandbox) checkConstitution(c goja.FunctionCall) goja.Value {
	src := sb.stringArg(c, 0, "gavel.constitution.check", "source")
	// Compiling (four esbuild passes, three goja compilations) costs
	// milliseconds whatever the size: charged the same whether or not the
	// result is cached, so the budget never depends on a cache.
	sb.charge(compileBase + int64(len(src))*compileCost/stringUnit)
	cur := sb.cur
	if cur.env.checking {
		// Checking a constitution runs its validate, which may check the
		// default: one level is enough, and recursion would have no end.
		var err error
		sb.inHost(func() { _, err = CompileModule(src) })
		if err != nil {
			return sb.rt.ToValue(CodeConstitutionCompileError + ": the constitution does not compile")
		}
		return goja.Null()
	}
	env := cur.env
	env.checking = true
	env.Limits = cur.limits
	env.Limits.MaxFuel = cur.limits.MaxFuel - cur.used
	if env.Limits.MaxFuel <= 0 {
		panic(abortPanic{errBudget(cur.limits)})
	}
	var used int64
	env.fuelUsed = &used
	var err error
	sb.inHost(func() { err = CheckRepairable(env, src) })
	sb.charge(used)
	if err != nil {
		if errors.Is(err, ErrSafetyLimit) || engine.KindOf(err) != engine.KindInvalid {
			panic(abortPanic{engine.AsError(err)})
		}
		e := engine.AsError(err)
		return sb.rt.ToValue(e.Code + ": " + e.Message)
	}
	return goja.Null()
}

// compileBase and compileCost are the fuel of compiling a constitution:
// a fixed part and a part per stringUnit bytes of source.
const (
	compileBase = 50_000
	compileCost = 8
)

// logger converts and charges its arguments whether or not anyone listens,
// so a call costs the same on the replica and in the auditor.
func (sb *sandbox) logger(level string) nativeFunc {
	return func(c goja.FunctionCall) goja.Value {
		cur := sb.cur
		if cur == nil {
			return goja.Undefined()
		}
		parts := make([]string, len(c.Arguments))
		for i, a := range c.Arguments {
			parts[i] = a.String()
		}
		line := level + ": " + strings.Join(parts, " ")
		sb.chargeSize(int64(len(line)))
		sb.observeOpaque() // a reused outcome would not log again
		if cur.env.Log == nil || cur.logged >= cur.limits.MaxLogBytes {
			return goja.Undefined()
		}
		if room := cur.limits.MaxLogBytes - cur.logged; len(line) > room {
			line = line[:room] + "…"
		}
		cur.logged += len(line)
		cur.env.Log(line)
		return goja.Undefined()
	}
}

package constitution

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/dlclark/regexp2/v2"
	"github.com/dop251/goja"
)

// regexpTimeout bounds one backtracking regular-expression match. goja runs
// such matches (regexp2) without checking for interrupts and treats a
// timeout as "no match", so Limits.Timeout is capped below it: the call's
// own interrupt always lands first and a timed-out match never becomes a
// result. Go-syntax-compatible expressions use Go's linear-time regexp.
const regexpTimeout = MaxTimeout + time.Second

func init() {
	// regexp2 is reached only through goja in gavel.
	regexp2.DefaultMatchTimeout = regexpTimeout
}

func (sb *sandbox) limits() Limits {
	if c := sb.cur; c != nil {
		return c.limits
	}
	return DefaultLimits()
}

// toLength is ECMAScript ToLength.
func toLength(v goja.Value) int64 {
	if v == nil || goja.IsUndefined(v) {
		return 0
	}
	f := v.ToNumber().ToFloat()
	switch {
	case math.IsNaN(f) || f <= 0:
		return 0
	case f >= 1<<53-1:
		return 1<<53 - 1
	}
	return int64(f)
}

func isObject(v goja.Value) bool {
	_, ok := v.(*goja.Object)
	return ok
}

// The checks charge for what was attempted (up to the limit) before they
// throw, so a script that catches and retries pays for each attempt.
func (sb *sandbox) checkArrayLength(n int64, what string) {
	if max := sb.limits().MaxArrayLength; n > int64(max) {
		sb.charge(1 + int64(max)/elementUnit)
		sb.throwRange("%s of length %d exceeds the limit of %d elements", what, n, max)
	}
}

func (sb *sandbox) checkStringLength(n int64) {
	if max := sb.limits().MaxStringLength; n > int64(max) {
		sb.chargeSize(int64(max))
		sb.throwRange("a string of length %d exceeds the limit of %d", n, max)
	}
}

// lengthOf reads `length` of an array-like, checks it and charges for
// walking it.
func (sb *sandbox) lengthOf(v goja.Value, what string) int64 {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return 0
	}
	n := toLength(v.ToObject(sb.rt).Get("length"))
	sb.checkArrayLength(n, what)
	sb.charge(1 + n/elementUnit)
	return n
}

// elementUnit is how many elements a native builtin walks per unit of fuel.
const elementUnit = 1

// chargeResult charges for the array or string a builtin returned.
func (sb *sandbox) chargeResult(v goja.Value) goja.Value {
	switch x := v.(type) {
	case goja.String:
		sb.chargeSize(int64(x.Length()))
	case *goja.Object:
		if x.ClassName() == "Array" {
			sb.charge(1 + toLength(x.Get("length")))
		}
	}
	return v
}

// str is ECMAScript ToString: goja's Value.ToString returns a primitive,
// not necessarily a string.
func (sb *sandbox) str(v goja.Value) goja.String {
	p := v.ToString()
	if s, ok := p.(goja.String); ok {
		return s
	}
	if _, ok := p.(*goja.Symbol); ok {
		panic(sb.rt.NewTypeError("Cannot convert a Symbol value to a string"))
	}
	return sb.rt.ToValue(p.String()).(goja.String)
}

// thisString is RequireObjectCoercible(this) + ToString, done once so the
// original builtin sees a primitive and user toString runs only once.
func (sb *sandbox) thisString(c goja.FunctionCall, name string) goja.String {
	if c.This == nil || goja.IsUndefined(c.This) || goja.IsNull(c.This) {
		panic(sb.rt.NewTypeError("String.prototype." + name + " called on null or undefined"))
	}
	return sb.str(c.This)
}

type methodKey struct {
	name string
	sym  *goja.Symbol
}

// wrap replaces a native builtin method with a guarded one that calls the
// original directly (Export of a native function is its Go implementation).
func (sb *sandbox) wrap(obj *goja.Object, key methodKey, guard func(orig nativeFunc) nativeFunc) error {
	var v goja.Value
	if key.sym != nil {
		v = obj.GetSymbol(key.sym)
	} else {
		v = obj.Get(key.name)
	}
	fobj, ok := v.(*goja.Object)
	if !ok {
		return fmt.Errorf("builtin %s is missing", key.name)
	}
	orig, ok := fobj.Export().(nativeFunc)
	if !ok {
		return fmt.Errorf("builtin %s is not native", key.name)
	}
	w := sb.rt.ToValue(guard(orig)).(*goja.Object)
	name := key.name
	if key.sym != nil {
		name = "[" + strings.TrimSuffix(strings.TrimPrefix(key.sym.String(), "Symbol("), ")") + "]"
	}
	_ = w.DefineDataProperty("name", sb.rt.ToValue(name), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	_ = w.DefineDataProperty("length", fobj.Get("length"), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	if key.sym != nil {
		return obj.DefineDataPropertySymbol(key.sym, w, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	}
	return obj.DefineDataProperty(key.name, w, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

func named(n string) methodKey { return methodKey{name: n} }

// installGuards bounds every builtin known to loop natively over a length
// it is handed, or to build a large value in one step. goja checks for
// interrupts only between instructions, so without these a few characters
// of script (`a.length = 2**32-1; a.fill(0)`) could hold a core for hours or
// exhaust memory before the watchdog could act.
func (sb *sandbox) installGuards() error {
	rt := sb.rt
	proto := func(ctor string) *goja.Object {
		return rt.Get(ctor).ToObject(rt).Get("prototype").ToObject(rt)
	}
	global := func(name string) *goja.Object { return rt.Get(name).ToObject(rt) }
	var errs []error
	add := func(obj *goja.Object, key methodKey, guard func(nativeFunc) nativeFunc) {
		if err := sb.wrap(obj, key, guard); err != nil {
			errs = append(errs, err)
		}
	}

	// Array.prototype: every method that walks `length`.
	arrayProto := proto("Array")
	checkThis := func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			sb.lengthOf(c.This, "an array")
			return orig(c)
		}
	}
	sorting := func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			n := sb.lengthOf(c.This, "an array")
			sb.charge(n * int64(bits.Len64(uint64(n))) / elementUnit)
			return orig(c)
		}
	}
	for _, m := range []string{"copyWithin", "every", "fill", "filter", "find", "findIndex", "findLast",
		"findLastIndex", "forEach", "includes", "indexOf", "lastIndexOf", "map", "reduce", "reduceRight",
		"reverse", "shift", "slice", "some", "splice", "unshift", "toReversed",
		"toSpliced", "with"} {
		if arrayProto.Get(m) != nil {
			add(arrayProto, named(m), checkThis)
		}
	}
	for _, m := range []string{"sort", "toSorted"} {
		if arrayProto.Get(m) != nil {
			add(arrayProto, named(m), sorting)
		}
	}
	add(arrayProto, named("push"), func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			n := toLength(c.This.ToObject(sb.rt).Get("length"))
			sb.checkArrayLength(n+int64(len(c.Arguments)), "an array")
			sb.charge(int64(len(c.Arguments)) / elementUnit)
			return orig(c)
		}
	})
	add(arrayProto, named("concat"), func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			total := sb.lengthOf(c.This, "an array")
			for _, a := range c.Arguments {
				if o, ok := a.(*goja.Object); ok && o.ClassName() == "Array" {
					total += sb.lengthOf(o, "an array")
				} else {
					total++
				}
			}
			sb.checkArrayLength(total, "a concatenation")
			sb.charge(total / elementUnit)
			return orig(c)
		}
	})
	add(arrayProto, named("join"), func(nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value { return sb.join(c, false) }
	})
	add(arrayProto, named("toLocaleString"), func(nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value { return sb.join(c, true) }
	})
	// %TypedArray%.prototype has its own join: same guard.
	if tp, err := rt.RunString("Object.getPrototypeOf(Int8Array.prototype)"); err == nil {
		typed := tp.ToObject(rt)
		add(typed, named("join"), func(nativeFunc) nativeFunc {
			return func(c goja.FunctionCall) goja.Value { return sb.join(c, false) }
		})
		add(typed, named("toLocaleString"), func(nativeFunc) nativeFunc {
			return func(c goja.FunctionCall) goja.Value { return sb.join(c, true) }
		})
		for _, m := range []string{"every", "fill", "filter", "find", "findIndex", "forEach", "includes",
			"indexOf", "lastIndexOf", "map", "reduce", "reduceRight", "reverse", "slice", "some", "subarray", "set"} {
			if typed.Get(m) != nil {
				add(typed, named(m), checkThis)
			}
		}
		add(typed, named("sort"), sorting)
	} else {
		errs = append(errs, err)
	}
	add(arrayProto, named("flat"), func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			depth := 1.0
			if d := c.Argument(0); !goja.IsUndefined(d) {
				depth = d.ToNumber().ToFloat()
			}
			budget := int64(0)
			sb.countFlat(c.This.ToObject(sb.rt), depth, 0, &budget)
			return orig(c)
		}
	})
	add(arrayProto, named("flatMap"), func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			sb.lengthOf(c.This, "an array")
			fn, ok := goja.AssertFunction(c.Argument(0))
			if !ok {
				return orig(c)
			}
			total := int64(0)
			metered := sb.rt.ToValue(func(cc goja.FunctionCall) goja.Value {
				r, err := fn(cc.This, cc.Arguments...)
				if err != nil {
					panic(err)
				}
				if o, ok := r.(*goja.Object); ok && o.ClassName() == "Array" {
					total += sb.lengthOf(o, "a flatMap result")
				} else {
					total++
				}
				sb.checkArrayLength(total, "a flatMap result")
				return r
			})
			return orig(goja.FunctionCall{This: c.This, Arguments: append([]goja.Value{metered}, c.Arguments[1:]...)})
		}
	})
	add(global("Array"), named("from"), func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			if items := c.Argument(0); isObject(items) || goja.IsString(items) {
				sb.lengthOf(items, "an array-like")
			}
			return orig(c)
		}
	})

	// Spreading or destructuring iterates natively: let the watchdog stop it.
	iterNext := func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			sb.charge(8)
			return orig(c)
		}
	}
	for _, src := range []string{"[][Symbol.iterator]()", "''[Symbol.iterator]()", "/a/g[Symbol.matchAll]('')"} {
		it, err := rt.RunString("Object.getPrototypeOf(" + src + ")")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		add(it.ToObject(rt), named("next"), iterNext)
	}

	// Argument lists built from array-likes.
	argsAt := func(i int) func(nativeFunc) nativeFunc {
		return func(orig nativeFunc) nativeFunc {
			return func(c goja.FunctionCall) goja.Value {
				if a := c.Argument(i); isObject(a) {
					sb.lengthOf(a, "an argument list")
				}
				return orig(c)
			}
		}
	}
	add(proto("Function"), named("apply"), argsAt(1))
	reflect := global("Reflect")
	add(reflect, named("apply"), argsAt(2))
	add(reflect, named("construct"), argsAt(1))

	// Strings as key lists.
	stringKeys := func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			for _, a := range c.Arguments {
				if goja.IsString(a) {
					sb.checkArrayLength(int64(a.(goja.String).Length()), "a string used as an object")
				} else if o, ok := a.(*goja.Object); ok && o.ClassName() == "String" {
					sb.lengthOf(o, "a string used as an object")
				}
			}
			return sb.chargeResult(orig(c))
		}
	}
	object := global("Object")
	for _, m := range []string{"keys", "values", "entries", "getOwnPropertyNames", "getOwnPropertyDescriptors", "assign"} {
		add(object, named(m), stringKeys)
	}
	add(reflect, named("ownKeys"), stringKeys)

	sb.installStringGuards(proto("String"), global("String"), proto("RegExp"), add)

	jsonObj := global("JSON")
	add(jsonObj, named("parse"), func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			text := sb.str(c.Argument(0))
			sb.chargeSize(int64(text.Length()))
			if _, ok := goja.AssertFunction(c.Argument(1)); !ok {
				return sb.parseJSONText(text.String(), sb.limits().MaxDepth)
			}
			if depth := jsonDepth(text.String()); depth > sb.limits().MaxDepth {
				sb.throwRange("JSON nesting depth %d exceeds the limit of %d", depth, sb.limits().MaxDepth)
			}
			return orig(goja.FunctionCall{This: c.This, Arguments: append([]goja.Value{text}, c.Arguments[1:]...)})
		}
	})
	add(jsonObj, named("stringify"), func(nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			return sb.chargeResult(sb.stringify(c.Argument(0), c.Argument(1), c.Argument(2)))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("installing builtin guards: %v", errs)
	}
	return nil
}

// hostChecks are the Go checks harden.js wires into the guarded
// constructors.
func (sb *sandbox) hostChecks() *goja.Object {
	o := sb.rt.NewObject()
	_ = o.Set("checkLength", func(c goja.FunctionCall) goja.Value {
		if a := c.Argument(0); !goja.IsUndefined(a) {
			sb.checkArrayLength(toLength(a), "a collection")
			sb.charge(1 + toLength(a)/elementUnit)
		}
		return goja.Undefined()
	})
	_ = o.Set("checkBytes", func(c goja.FunctionCall) goja.Value {
		if a := c.Argument(0); !goja.IsUndefined(a) {
			sb.checkStringLength(toLength(a))
			sb.chargeSize(toLength(a))
		}
		return goja.Undefined()
	})
	return o
}

// join is Array.prototype.join (and toLocaleString) with the result's size
// metered as it grows; cyclic arrays join to "" as in other engines.
func (sb *sandbox) join(c goja.FunctionCall, locale bool) goja.Value {
	rt := sb.rt
	o := c.This.ToObject(rt)
	n := sb.lengthOf(o, "an array")
	lim := sb.limits()
	for _, a := range sb.joinStack {
		if a == o {
			return rt.ToValue("")
		}
	}
	if len(sb.joinStack) >= lim.MaxDepth {
		sb.throwRange("arrays nested deeper than %d cannot be joined", lim.MaxDepth)
	}
	sb.joinStack = append(sb.joinStack, o)
	defer func() { sb.joinStack = sb.joinStack[:len(sb.joinStack)-1] }()

	sep := rt.ToValue(",").(goja.String)
	if s := c.Argument(0); !locale && !goja.IsUndefined(s) {
		sep = sb.str(s)
	}
	var b goja.StringBuilder
	size := int64(0)
	for i := int64(0); i < n; i++ {
		if i&1023 == 0 {
			sb.checkAbort()
		}
		if i > 0 {
			size += int64(sep.Length())
			sb.checkStringLength(size)
			b.WriteString(sep)
		}
		el := o.Get(strconv.FormatInt(i, 10))
		if el == nil || goja.IsUndefined(el) || goja.IsNull(el) {
			continue
		}
		var s goja.String
		if locale {
			eo := el.ToObject(rt)
			f, ok := goja.AssertFunction(eo.Get("toLocaleString"))
			if !ok {
				panic(rt.NewTypeError("toLocaleString is not a function"))
			}
			r, err := f(eo)
			if err != nil {
				panic(err)
			}
			s = sb.str(r)
		} else {
			s = sb.str(el)
		}
		size += int64(s.Length())
		sb.checkStringLength(size)
		b.WriteString(s)
	}
	sb.chargeSize(size)
	return b.String()
}

// countFlat checks, before Array.prototype.flat allocates, that the result
// stays within MaxArrayLength and the nesting within MaxDepth.
func (sb *sandbox) countFlat(o *goja.Object, depth float64, level int, budget *int64) {
	if level > sb.limits().MaxDepth {
		sb.throwRange("arrays nested deeper than %d cannot be flattened", sb.limits().MaxDepth)
	}
	n := sb.lengthOf(o, "an array")
	for i := int64(0); i < n; i++ {
		*budget++
		if *budget&1023 == 0 {
			sb.checkAbort()
		}
		sb.checkArrayLength(*budget, "a flattened array")
		if depth < 1 {
			continue
		}
		if el, ok := o.Get(strconv.FormatInt(i, 10)).(*goja.Object); ok && el.ClassName() == "Array" {
			sb.countFlat(el, depth-1, level+1, budget)
		}
	}
}

// jsonDepth is the deepest bracket nesting of a JSON text (strings skipped).
func jsonDepth(s string) int {
	depth, max := 0, 0
	inString, escaped := false, false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case ch == '\\':
				escaped = true
			case ch == '"':
				inString = false
			}
		case ch == '"':
			inString = true
		case ch == '[' || ch == '{':
			depth++
			if depth > max {
				max = depth
			}
		case ch == ']' || ch == '}':
			depth--
		}
	}
	return max
}

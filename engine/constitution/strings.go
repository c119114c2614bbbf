package constitution

import (
	"math"
	"strconv"
	"strings"

	"github.com/dop251/goja"
)

func (sb *sandbox) installStringGuards(stringProto, stringCtor, regexpProto *goja.Object, add func(*goja.Object, methodKey, func(nativeFunc) nativeFunc)) {
	rt := sb.rt
	add(stringProto, named("repeat"), func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			s := sb.thisString(c, "repeat")
			count := c.Argument(0).ToNumber()
			if f := count.ToFloat(); f > 0 && !math.IsInf(f, 1) {
				if float64(s.Length())*math.Floor(f) > float64(sb.limits().MaxStringLength) {
					sb.throwRange("repeat would build a string longer than %d", sb.limits().MaxStringLength)
				}
				sb.chargeSize(int64(float64(s.Length()) * math.Floor(f)))
			}
			return orig(goja.FunctionCall{This: s, Arguments: []goja.Value{count}})
		}
	})
	pad := func(name string) func(nativeFunc) nativeFunc {
		return func(orig nativeFunc) nativeFunc {
			return func(c goja.FunctionCall) goja.Value {
				s := sb.thisString(c, name)
				n := c.Argument(0).ToNumber()
				sb.checkStringLength(toLength(n))
				sb.chargeSize(toLength(n))
				return orig(goja.FunctionCall{This: s, Arguments: append([]goja.Value{n}, c.Arguments[min(1, len(c.Arguments)):]...)})
			}
		}
	}
	add(stringProto, named("padStart"), pad("padStart"))
	add(stringProto, named("padEnd"), pad("padEnd"))
	add(stringProto, named("concat"), func(nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			s := sb.thisString(c, "concat")
			var b goja.StringBuilder
			size := int64(s.Length())
			b.WriteString(s)
			for _, a := range c.Arguments {
				p := sb.str(a)
				size += int64(p.Length())
				sb.checkStringLength(size)
				b.WriteString(p)
			}
			sb.chargeSize(size)
			return b.String()
		}
	})
	add(stringCtor, named("raw"), func(nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			raw := c.Argument(0).ToObject(rt).Get("raw").ToObject(rt)
			n := sb.lengthOf(raw, "String.raw's template")
			var b goja.StringBuilder
			size := int64(0)
			for i := int64(0); i < n; i++ {
				if i&1023 == 0 {
					sb.checkAbort()
				}
				p := sb.str(raw.Get(strconv.FormatInt(i, 10)))
				size += int64(p.Length())
				sb.checkStringLength(size)
				b.WriteString(p)
				if i+1 < n && int(i+1) < len(c.Arguments) {
					p = sb.str(c.Arguments[i+1])
					size += int64(p.Length())
					sb.checkStringLength(size)
					b.WriteString(p)
				}
			}
			sb.chargeSize(size)
			return b.String()
		}
	})
	replace := func(name string) func(nativeFunc) nativeFunc {
		return func(orig nativeFunc) nativeFunc {
			return func(c goja.FunctionCall) goja.Value {
				if sb.hasSymbolMethod(c.Argument(0), goja.SymReplace) {
					return orig(c) // RegExp.prototype[Symbol.replace] is guarded itself
				}
				s := sb.thisString(c, name)
				search := sb.str(c.Argument(0))
				return orig(goja.FunctionCall{This: s, Arguments: []goja.Value{search, sb.meteredReplacer(s, c.Argument(1))}})
			}
		}
	}
	add(stringProto, named("replace"), replace("replace"))
	add(stringProto, named("replaceAll"), replace("replaceAll"))
	add(stringProto, named("split"), func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			if sb.hasSymbolMethod(c.Argument(0), goja.SymSplit) {
				return orig(c)
			}
			s := sb.thisString(c, "split")
			limit := goja.Value(sb.rt.ToValue(uint32(math.MaxUint32)))
			if l := c.Argument(1); !goja.IsUndefined(l) {
				limit = sb.rt.ToValue(toUint32(l))
			}
			if sepV := c.Argument(0); !goja.IsUndefined(sepV) {
				sep := sb.str(sepV)
				parts := int64(s.Length())
				if sep.Length() > 0 {
					parts = int64(strings.Count(s.String(), sep.String())) + 1
				}
				sb.checkArrayLength(min(parts, limit.ToInteger()), "a split result")
				sb.chargeSize(int64(s.Length()))
				return orig(goja.FunctionCall{This: s, Arguments: []goja.Value{sep, limit}})
			}
			return orig(goja.FunctionCall{This: s, Arguments: []goja.Value{goja.Undefined(), limit}})
		}
	})

	// Matching is charged by input length; a backtracking match (regexp2)
	// may still run long: the wall-clock safety net refuses it.
	matching := func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			s := sb.str(c.Argument(0))
			sb.chargeSize(int64(s.Length()))
			return orig(goja.FunctionCall{This: c.This, Arguments: []goja.Value{s}})
		}
	}
	// exec and test are charged by the whole input: goja converts it at
	// every call (a global regexp's replace or split calls exec per match).
	add(regexpProto, named("exec"), matching)
	add(regexpProto, named("test"), matching)
	add(regexpProto, methodKey{sym: goja.SymSearch}, matching)
	add(regexpProto, methodKey{sym: goja.SymReplace}, func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			s := sb.str(c.Argument(0))
			return orig(goja.FunctionCall{This: c.This, Arguments: []goja.Value{s, sb.meteredReplacer(s, c.Argument(1))}})
		}
	})
	add(regexpProto, methodKey{sym: goja.SymSplit}, func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			s := sb.str(c.Argument(0))
			limit := int64(math.MaxUint32)
			if l := c.Argument(1); !goja.IsUndefined(l) {
				limit = int64(toUint32(l))
			}
			sb.checkArrayLength(min(limit, int64(s.Length())+1), "a split result")
			sb.chargeSize(int64(s.Length()))
			return orig(goja.FunctionCall{This: c.This, Arguments: []goja.Value{s, sb.rt.ToValue(limit)}})
		}
	})
	add(regexpProto, methodKey{sym: goja.SymMatch}, func(orig nativeFunc) nativeFunc {
		return func(c goja.FunctionCall) goja.Value {
			s := sb.str(c.Argument(0))
			if rx, ok := c.This.(*goja.Object); ok && rx.Get("global").ToBoolean() {
				sb.checkArrayLength(int64(s.Length())+1, "a global match result")
			}
			sb.chargeSize(int64(s.Length()))
			return orig(goja.FunctionCall{This: c.This, Arguments: []goja.Value{s}})
		}
	})
}

func toUint32(v goja.Value) uint32 {
	f := v.ToNumber().ToFloat()
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return uint32(int64(math.Trunc(math.Mod(f, 1<<32))))
}

func (sb *sandbox) hasSymbolMethod(v goja.Value, sym *goja.Symbol) bool {
	o, ok := v.(*goja.Object)
	if !ok {
		return false
	}
	m := o.GetSymbol(sym)
	return m != nil && !goja.IsUndefined(m) && !goja.IsNull(m)
}

// meteredReplacer turns a replace() replacement into a function that
// builds each replacement itself (GetSubstitution for strings) and keeps
// the result within MaxStringLength before goja concatenates it.
func (sb *sandbox) meteredReplacer(s goja.String, replaceValue goja.Value) goja.Value {
	rt := sb.rt
	size := int64(s.Length())
	sb.checkStringLength(size)
	meter := func(r goja.String) goja.String {
		size += int64(r.Length())
		sb.checkStringLength(size)
		sb.chargeSize(int64(r.Length()))
		return r
	}
	if fn, ok := goja.AssertFunction(replaceValue); ok {
		return rt.ToValue(func(c goja.FunctionCall) goja.Value {
			r, err := fn(goja.Undefined(), c.Arguments...)
			if err != nil {
				panic(err)
			}
			return meter(sb.str(r))
		})
	}
	template := sb.str(replaceValue)
	return rt.ToValue(func(c goja.FunctionCall) goja.Value {
		return meter(sb.substitute(template, c.Arguments))
	})
}

// substitute is ECMAScript GetSubstitution, given the arguments a
// functional replacer receives: matched, captures…, position, string[,
// groups].
func (sb *sandbox) substitute(template goja.String, args []goja.Value) goja.String {
	rt := sb.rt
	if !strings.Contains(template.String(), "$") {
		return template
	}
	n := len(args)
	var groups goja.Value = goja.Undefined()
	if n > 0 && isObject(args[n-1]) {
		groups = args[n-1]
		n--
	}
	if n < 3 {
		return template
	}
	matched := sb.str(args[0])
	position := int(args[n-2].ToInteger())
	str := sb.str(args[n-1])
	captures := args[1 : n-2]
	tail := min(position+matched.Length(), str.Length())
	position = min(max(position, 0), str.Length())

	var b goja.StringBuilder
	l := template.Length()
	for i := 0; i < l; i++ {
		ch := template.CharAt(i)
		if ch != '$' || i+1 == l {
			b.WriteString(template.Substring(i, i+1))
			continue
		}
		next := template.CharAt(i + 1)
		switch {
		case next == '$':
			b.WriteString(template.Substring(i, i+1))
			i++
		case next == '&':
			b.WriteString(matched)
			i++
		case next == '`':
			b.WriteString(str.Substring(0, position))
			i++
		case next == '\'':
			b.WriteString(str.Substring(tail, str.Length()))
			i++
		case next >= '0' && next <= '9':
			digits, index := 1, int(next-'0')
			if i+2 < l {
				if d := template.CharAt(i + 2); d >= '0' && d <= '9' {
					if two := index*10 + int(d-'0'); two >= 1 && two <= len(captures) {
						digits, index = 2, two
					}
				}
			}
			if index < 1 || index > len(captures) {
				b.WriteString(template.Substring(i, i+1))
				continue
			}
			if c := captures[index-1]; !goja.IsUndefined(c) {
				b.WriteString(sb.str(c))
			}
			i += digits
		case next == '<':
			end := -1
			for j := i + 2; j < l; j++ {
				if template.CharAt(j) == '>' {
					end = j
					break
				}
			}
			if goja.IsUndefined(groups) || end < 0 {
				b.WriteString(template.Substring(i, i+1))
				continue
			}
			name := template.Substring(i+2, end).String()
			if v := groups.ToObject(rt).Get(name); v != nil && !goja.IsUndefined(v) {
				b.WriteString(sb.str(v))
			}
			i = end
		default:
			b.WriteString(template.Substring(i, i+1))
		}
	}
	return b.String()
}

package constitution

import (
	"github.com/dop251/goja"
)

// newMeter is the host half of the fuel meter, bound once per sandbox
// (instrument.go's meterSource); scripts cannot name it.
func (sb *sandbox) newMeter() goja.Value {
	rt := sb.rt
	o := rt.NewObject()
	_ = o.Set("tick", func(goja.FunctionCall) goja.Value {
		sb.charge(1)
		return goja.Undefined()
	})
	_ = o.Set("tick8", func(goja.FunctionCall) goja.Value {
		sb.charge(8)
		return goja.Undefined()
	})
	// str charges for a string built by + or +=, and checks its length
	// before the script can keep it.
	_ = o.Set("str", func(c goja.FunctionCall) goja.Value {
		s := c.Argument(0)
		if str, ok := s.(goja.String); ok {
			n := int64(str.Length())
			sb.charge(n / stringUnit)
			sb.checkStringLength(n)
		}
		return s
	})
	_ = o.Set("tpl", sb.template)
	_ = o.Set("key", func(c goja.FunctionCall) goja.Value {
		k := c.Argument(0)
		if _, ok := k.(*goja.Object); ok {
			return sb.str(k)
		}
		return k
	})
	return o
}

// charge takes n units of fuel from the running call.
func (sb *sandbox) charge(n int64) {
	if cur := sb.cur; cur != nil && n > 0 {
		cur.used += n
		if cur.used > cur.limits.MaxFuel {
			panic(abortPanic{errBudget(cur.limits)})
		}
		sb.checkAbort()
	}
}

// chargeSize charges for n code units or bytes walked or built.
func (sb *sandbox) chargeSize(n int64) { sb.charge(1 + n/stringUnit) }

// template joins a rewritten template literal's parts: each converted with
// ToString, the total checked against MaxStringLength before it is built.
func (sb *sandbox) template(c goja.FunctionCall) goja.Value {
	parts := make([]goja.String, len(c.Arguments))
	size := int64(0)
	for i, a := range c.Arguments {
		parts[i] = sb.str(a)
		size += int64(parts[i].Length())
		sb.checkStringLength(size)
	}
	sb.chargeSize(size)
	var b goja.StringBuilder
	b.Grow(int(size))
	for _, p := range parts {
		b.WriteString(p)
	}
	return b.String()
}

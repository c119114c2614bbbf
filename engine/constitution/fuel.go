package constitution

import (
	"github.com/dop251/goja"
)

// newMeter is the host half of the fuel meter, handed to every module
// instance (instrument.go's prelude); scripts cannot name it.
func (sb *sandbox) newMeter() goja.Value {
	rt := sb.rt
	o := rt.NewObject()
	_ = o.Set("take", func(c goja.FunctionCall) goja.Value {
		cur := sb.cur
		cur.used += cur.given - c.Argument(0).ToInteger()
		cur.given = 0
		sb.checkFuel()
		cur.given = min(fuelChunk, cur.limits.MaxFuel-cur.used)
		return rt.ToValue(cur.given)
	})
	_ = o.Set("tpl", sb.template)
	_ = o.Set("tooLong", func(c goja.FunctionCall) goja.Value {
		sb.checkStringLength(c.Argument(0).ToInteger())
		return goja.Undefined()
	})
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
		sb.checkFuel()
	}
}

// chargeSize charges for n code units or bytes walked or built.
func (sb *sandbox) chargeSize(n int64) { sb.charge(1 + n/stringUnit) }

func (sb *sandbox) checkFuel() {
	cur := sb.cur
	if cur.used > cur.limits.MaxFuel {
		panic(abortPanic{errBudget(cur.limits)})
	}
	sb.checkAbort()
}

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

package constitution

import (
	"math"
	"strconv"

	"github.com/dop251/goja"
)

// stringify is JSON.stringify with the output metered: the original runs
// with a replacer that sees every value after toJSON, tracks the nesting
// depth and an estimate of the output size, and stops the serialisation
// before it outgrows MaxStringLength or MaxDepth. A user replacer function
// runs inside it; a property-list replacer is applied by filtering objects.
func (sb *sandbox) stringify(value, replacer, space goja.Value) goja.Value {
	rt := sb.rt
	lim := sb.limits()

	var userFn goja.Callable
	var keep []string // property list, if the replacer is an array
	if r, ok := replacer.(*goja.Object); ok {
		if fn, ok := goja.AssertFunction(r); ok {
			userFn = fn
		} else if r.ClassName() == "Array" {
			n := sb.lengthOf(r, "a replacer list")
			seen := map[string]bool{}
			for i := int64(0); i < n; i++ {
				v := r.Get(strconv.FormatInt(i, 10))
				if o, ok := v.(*goja.Object); ok && o.ClassName() != "String" && o.ClassName() != "Number" {
					continue
				}
				if goja.IsString(v) || goja.IsNumber(v) || isObject(v) {
					k := v.String()
					if !seen[k] {
						seen[k] = true
						keep = append(keep, k)
					}
				}
			}
			if keep == nil {
				keep = []string{}
			}
		}
	}

	gap := 0
	switch s := space.(type) {
	case *goja.Object:
		switch s.ClassName() {
		case "Number":
			space = s.ToNumber()
		case "String":
			space = s.ToString()
		}
	}
	if goja.IsNumber(space) {
		gap = int(math.Max(0, math.Min(10, math.Trunc(space.ToFloat()))))
	} else if goja.IsString(space) {
		gap = min(10, space.(goja.String).Length())
	}

	var path []*goja.Object // holders from the root to the current value
	size, calls := int64(0), 0
	meter := rt.ToValue(func(c goja.FunctionCall) goja.Value {
		holder, _ := c.This.(*goja.Object)
		key, v := c.Argument(0), c.Argument(1)
		if userFn != nil {
			r, err := userFn(c.This, key, v)
			if err != nil {
				panic(err)
			}
			v = r
		}
		for len(path) > 0 && path[len(path)-1] != holder {
			path = path[:len(path)-1]
		}
		depth := len(path)
		if depth > lim.MaxDepth {
			sb.throwRange("JSON nesting depth exceeds the limit of %d", lim.MaxDepth)
		}
		cost := int64(1 + gap*depth)
		if holder != nil && holder.ClassName() != "Array" {
			cost += int64(sb.str(key).Length()) + 3
		}
		switch {
		case goja.IsString(v):
			cost += int64(v.(goja.String).Length()) + 2
		case isObject(v):
			o := v.(*goja.Object)
			if keep != nil && o.ClassName() != "Array" && !isFunction(o) {
				filtered := rt.NewObject()
				for _, k := range keep {
					if pv := o.Get(k); pv != nil && !goja.IsUndefined(pv) {
						_ = filtered.Set(k, pv)
					}
				}
				o, v = filtered, filtered
			}
			cost += 2
			path = append(path, o)
		case v == nil || goja.IsUndefined(v):
		default:
			cost += int64(len(v.String()))
		}
		size += cost
		if size > int64(lim.MaxStringLength) {
			sb.throwRange("JSON text would exceed the limit of %d characters", lim.MaxStringLength)
		}
		if calls++; calls&255 == 0 {
			sb.checkAbort()
		}
		return v
	})
	return sb.stringifyJSON(goja.FunctionCall{Arguments: []goja.Value{value, meter, space}})
}

func isFunction(o *goja.Object) bool {
	_, ok := goja.AssertFunction(o)
	return ok
}

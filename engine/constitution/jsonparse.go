package constitution

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// parseJSONText is JSON.parse without a reviver (RFC 8259 grammar), built
// for speed: goja's own parser goes token by token through encoding/json,
// and every kv read and most ballots parse JSON. Objects keep key order, a
// repeated key keeps its first position and last value, "__proto__" is an
// ordinary key, and nesting deeper than maxDepth is a RangeError. Lone
// surrogate escapes become U+FFFD, as in goja's parser.
func (sb *sandbox) parseJSONText(text string, maxDepth int) goja.Value {
	p := jsonParser{sb: sb, s: text, maxDepth: maxDepth}
	p.space()
	v := p.value(0)
	p.space()
	if p.i < len(p.s) {
		p.fail()
	}
	return v
}

type jsonParser struct {
	sb       *sandbox
	s        string
	i        int
	maxDepth int
}

func (p *jsonParser) fail() {
	rt := p.sb.rt
	msg := "Unexpected end of JSON input"
	if p.i < len(p.s) {
		r, _ := utf8.DecodeRuneInString(p.s[p.i:])
		msg = "Unexpected token " + strconv.QuoteRune(r) + " in JSON at position " + strconv.Itoa(p.i)
	}
	obj, err := rt.New(rt.Get("SyntaxError"), rt.ToValue(msg))
	if err != nil {
		panic(rt.NewTypeError(msg))
	}
	panic(obj)
}

func (p *jsonParser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) goja.Value {
	if p.i >= len(p.s) {
		p.fail()
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.sb.rt.ToValue(p.str())
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case strings.HasPrefix(p.s[p.i:], "true"):
		p.i += 4
		return p.sb.rt.ToValue(true)
	case strings.HasPrefix(p.s[p.i:], "false"):
		p.i += 5
		return p.sb.rt.ToValue(false)
	case strings.HasPrefix(p.s[p.i:], "null"):
		p.i += 4
		return goja.Null()
	}
	p.fail()
	return nil
}

func (p *jsonParser) enter(depth int) {
	if depth > p.maxDepth {
		p.sb.throwRange("JSON nesting depth exceeds the limit of %d", p.maxDepth)
	}
	if depth&15 == 0 {
		p.sb.checkAbort()
	}
}

func (p *jsonParser) object(depth int) goja.Value {
	p.enter(depth)
	obj := p.sb.rt.NewObject()
	p.i++ // {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return obj
	}
	for {
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			p.fail()
		}
		key := p.str()
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			p.fail()
		}
		p.i++
		p.space()
		v := p.value(depth)
		if err := obj.DefineDataProperty(key, v, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE); err != nil {
			panic(err)
		}
		p.space()
		if p.i >= len(p.s) {
			p.fail()
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			p.space()
		case '}':
			p.i++
			return obj
		default:
			p.fail()
		}
	}
}

func (p *jsonParser) array(depth int) goja.Value {
	p.enter(depth)
	p.i++ // [
	p.space()
	var items []any
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return p.sb.rt.NewArray()
	}
	for {
		items = append(items, p.value(depth))
		if len(items)&1023 == 0 {
			p.sb.checkAbort()
		}
		p.space()
		if p.i >= len(p.s) {
			p.fail()
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			p.space()
		case ']':
			p.i++
			return p.sb.rt.NewArray(items...)
		default:
			p.fail()
		}
	}
}

// str reads a string literal starting at the opening quote.
func (p *jsonParser) str() string {
	p.i++ // "
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			s := p.s[start:p.i]
			p.i++
			return s
		case c == '\\':
			return p.escapedStr(start)
		case c < 0x20:
			p.fail()
		}
		p.i++
	}
	p.fail()
	return ""
}

func (p *jsonParser) escapedStr(start int) string {
	var b strings.Builder
	b.WriteString(p.s[start:p.i])
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String()
		case c < 0x20:
			p.fail()
		case c != '\\':
			b.WriteByte(c)
			p.i++
			continue
		}
		p.i++ // backslash
		if p.i >= len(p.s) {
			p.fail()
		}
		e := p.s[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r := p.hex4()
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if strings.HasPrefix(p.s[p.i:], "\\u") {
					save := p.i
					p.i += 2
					r2 = p.hex4()
					if utf16.DecodeRune(r, r2) == utf8.RuneError {
						p.i = save
						r2 = -1
					}
				}
				if r2 < 0 {
					r = utf8.RuneError
				} else {
					r = utf16.DecodeRune(r, r2)
				}
			}
			b.WriteRune(r)
		default:
			p.i--
			p.fail()
		}
	}
	p.fail()
	return ""
}

func (p *jsonParser) hex4() rune {
	if p.i+4 > len(p.s) {
		p.i = len(p.s)
		p.fail()
	}
	n, err := strconv.ParseUint(p.s[p.i:p.i+4], 16, 32)
	if err != nil {
		p.fail()
	}
	p.i += 4
	return rune(n)
}

func (p *jsonParser) number() goja.Value {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	switch {
	case p.i < len(p.s) && p.s[p.i] == '0':
		p.i++
	case digits() == 0:
		p.fail()
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if digits() == 0 {
			p.fail()
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			p.fail()
		}
	}
	f, err := strconv.ParseFloat(p.s[start:p.i], 64)
	if err != nil && !strings.Contains(err.Error(), "range") {
		p.fail()
	}
	return p.sb.rt.ToValue(f)
}

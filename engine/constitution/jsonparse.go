package constitution

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// JSON values reach scripts often and repeatedly: every gavel.kv read, and
// JSON.parse(proposal) in validate, apply and every ballot (all ballots of a
// proposal re-run at each vote). goja's JSON.parse goes token by token
// through encoding/json; this parser (RFC 8259 grammar, ECMAScript
// semantics: key order kept, a repeated key keeps its first position and
// last value, "__proto__" an ordinary key, lone surrogate escapes become
// U+FFFD as in goja) builds a runtime-independent tree that is cached by
// text and turned into fresh JavaScript values for each call.

// jsonNode is a parsed JSON value.
type jsonNode struct {
	kind  byte // 'o' object, 'a' array, 's' string, 'n' number, 't' true, 'f' false, 'z' null
	str   string
	num   float64
	keys  []string
	items []*jsonNode // object values (parallel to keys) or array items
	depth int         // nesting depth of this subtree
}

// jsonHardDepth bounds parser recursion whatever the call's MaxDepth.
const jsonHardDepth = 4096

// Parsed texts are cached up to these sizes.
const (
	jsonCacheMaxText  = 64 << 10
	jsonCacheMaxBytes = 16 << 20
)

type jsonCache struct {
	mu    sync.Mutex
	bytes int
	m     map[string]*jsonNode
}

var parsedJSON = &jsonCache{m: map[string]*jsonNode{}}

func (c *jsonCache) parse(text string) (*jsonNode, error) {
	if len(text) > jsonCacheMaxText {
		return parseJSON(text)
	}
	c.mu.Lock()
	n, ok := c.m[text]
	c.mu.Unlock()
	if ok {
		return n, nil
	}
	return c.add(text)
}

// parseBytes is parse of stored bytes: a hit copies nothing.
func (c *jsonCache) parseBytes(raw []byte) (*jsonNode, error) {
	if len(raw) <= jsonCacheMaxText {
		c.mu.Lock()
		n, ok := c.m[string(raw)]
		c.mu.Unlock()
		if ok {
			return n, nil
		}
	}
	return c.parse(string(raw))
}

func (c *jsonCache) add(text string) (*jsonNode, error) {
	n, err := parseJSON(text)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.bytes+len(text) > jsonCacheMaxBytes {
		clear(c.m) // crude but bounded; refills with what is hot
		c.bytes = 0
	}
	c.m[text] = n
	c.bytes += len(text)
	c.mu.Unlock()
	return n, nil
}

// parseJSONText is JSON.parse without a reviver.
func (sb *sandbox) parseJSONText(text string, maxDepth int) goja.Value {
	n, err := parsedJSON.parse(text)
	return sb.parsed(n, err, maxDepth)
}

func (sb *sandbox) parsed(n *jsonNode, err error, maxDepth int) goja.Value {
	if err != nil {
		sb.throwSyntax(err.Error())
	}
	if n.depth > maxDepth {
		sb.throwRange("JSON nesting depth %d exceeds the limit of %d", n.depth, maxDepth)
	}
	return sb.materialize(n)
}

func (sb *sandbox) throwSyntax(msg string) {
	rt := sb.rt
	obj, err := rt.New(rt.Get("SyntaxError"), rt.ToValue(msg))
	if err != nil {
		panic(rt.NewTypeError(msg))
	}
	panic(obj)
}

func (sb *sandbox) materialize(n *jsonNode) goja.Value {
	rt := sb.rt
	switch n.kind {
	case 'o':
		obj := rt.NewObject()
		for i, k := range n.keys {
			if err := obj.DefineDataProperty(k, sb.materialize(n.items[i]), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE); err != nil {
				panic(err)
			}
		}
		return obj
	case 'a':
		items := make([]any, len(n.items))
		for i, it := range n.items {
			items[i] = sb.materialize(it)
		}
		return rt.NewArray(items...)
	case 's':
		return rt.ToValue(n.str)
	case 'n':
		return rt.ToValue(n.num)
	case 't':
		return rt.ToValue(true)
	case 'f':
		return rt.ToValue(false)
	default:
		return goja.Null()
	}
}

// parseJSON parses a complete JSON text.
func parseJSON(text string) (n *jsonNode, err error) {
	p := jsonParser{s: text}
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(jsonError)
			if !ok {
				panic(r)
			}
			n, err = nil, errors.New(string(pe))
		}
	}()
	p.space()
	n = p.value(0)
	p.space()
	if p.i < len(p.s) {
		p.fail()
	}
	return n, nil
}

type jsonError string

type jsonParser struct {
	s string
	i int
}

func (p *jsonParser) fail() {
	if p.i >= len(p.s) {
		panic(jsonError("Unexpected end of JSON input"))
	}
	r, _ := utf8.DecodeRuneInString(p.s[p.i:])
	panic(jsonError("Unexpected token " + strconv.QuoteRune(r) + " in JSON at position " + strconv.Itoa(p.i)))
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

func (p *jsonParser) literal(word string, kind byte) *jsonNode {
	if !strings.HasPrefix(p.s[p.i:], word) {
		p.fail()
	}
	p.i += len(word)
	return &jsonNode{kind: kind}
}

func (p *jsonParser) value(depth int) *jsonNode {
	if p.i >= len(p.s) {
		p.fail()
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return &jsonNode{kind: 's', str: p.str()}
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true", 't')
	case c == 'f':
		return p.literal("false", 'f')
	case c == 'n':
		return p.literal("null", 'z')
	}
	p.fail()
	return nil
}

func (p *jsonParser) enter(depth int) {
	if depth > jsonHardDepth {
		panic(jsonError("JSON nesting depth exceeds " + strconv.Itoa(jsonHardDepth)))
	}
}

func (p *jsonParser) object(depth int) *jsonNode {
	p.enter(depth)
	n := &jsonNode{kind: 'o', depth: depth}
	p.i++ // {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return n
	}
	var index map[string]int // only for larger objects, to find repeated keys
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
		n.depth = max(n.depth, v.depth)
		at := -1
		if index != nil {
			if i, ok := index[key]; ok {
				at = i
			}
		} else {
			for i, k := range n.keys {
				if k == key {
					at = i
					break
				}
			}
		}
		if at >= 0 {
			n.items[at] = v
		} else {
			n.keys = append(n.keys, key)
			n.items = append(n.items, v)
			if index != nil {
				index[key] = len(n.keys) - 1
			} else if len(n.keys) > 16 {
				index = make(map[string]int, 32)
				for i, k := range n.keys {
					index[k] = i
				}
			}
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
			return n
		default:
			p.fail()
		}
	}
}

func (p *jsonParser) array(depth int) *jsonNode {
	p.enter(depth)
	n := &jsonNode{kind: 'a', depth: depth}
	p.i++ // [
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return n
	}
	for {
		v := p.value(depth)
		n.depth = max(n.depth, v.depth)
		n.items = append(n.items, v)
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
			return n
		default:
			p.fail()
		}
	}
}

// str reads a string literal starting at its opening quote.
func (p *jsonParser) str() string {
	p.i++ // "
	start := p.i
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
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
	b.Grow(p.i - start + 64)
	b.WriteString(p.s[start:p.i])
	for p.i < len(p.s) {
		// copy the run up to the next quote, backslash or control character
		run := p.i
		for p.i < len(p.s) && p.s[p.i] != '"' && p.s[p.i] != '\\' && p.s[p.i] >= 0x20 {
			p.i++
		}
		b.WriteString(p.s[run:p.i])
		if p.i >= len(p.s) {
			break
		}
		switch c := p.s[p.i]; {
		case c == '"':
			p.i++
			return b.String()
		case c < 0x20:
			p.fail()
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
			b.WriteRune(p.escapedRune())
		default:
			p.i--
			p.fail()
		}
	}
	p.fail()
	return ""
}

// escapedRune decodes \uXXXX (after the u), joining a surrogate pair.
func (p *jsonParser) escapedRune() rune {
	r := p.hex4()
	if !utf16.IsSurrogate(r) {
		return r
	}
	if strings.HasPrefix(p.s[p.i:], "\\u") {
		save := p.i
		p.i += 2
		if pair := utf16.DecodeRune(r, p.hex4()); pair != utf8.RuneError {
			return pair
		}
		p.i = save
	}
	return utf8.RuneError
}

func (p *jsonParser) hex4() rune {
	if p.i+4 > len(p.s) {
		p.i = len(p.s)
		p.fail()
	}
	var r rune
	for _, c := range []byte(p.s[p.i : p.i+4]) {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			p.fail()
		}
		p.i++
	}
	return r
}

func (p *jsonParser) number() *jsonNode {
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
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		p.fail()
	}
	return &jsonNode{kind: 'n', num: f}
}

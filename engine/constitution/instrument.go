package constitution

import (
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"strings"

	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/parser"
	"github.com/dop251/goja/token"
)

// Fuel. Every compiled bundle is rewritten so that its work is counted in
// the engine, the same on every machine:
//
//   - every loop iteration and every function entry (declarations,
//     expressions, arrows, methods, accessors, constructors, static blocks)
//     costs one unit, charged by a call of a host function (in goja a host
//     call, ~45 ns, is cheaper than decrementing a shared JavaScript
//     counter, ~85 ns in a closure, ~180 ns as a global binding:
//     BenchmarkFuelCheck);
//   - string concatenation by + and += and every untagged template literal
//     is checked against MaxStringLength before the result is kept, and
//     costs one unit per stringUnit code units of the result;
//   - native builtins and host calls charge by the size of what they walk
//     or build (guards.go, strings.go, hostapi.go).
//
// Instrumentation names start with reservedPrefix; a script that uses such
// a name, a BigInt literal or a compound assignment to a super property
// does not compile.

const (
	reservedPrefix = "__gavel_"
	stringUnit     = 16 // code units of a built string per unit of fuel
	tick           = "__gavel_tick();"
	// iterTick is a for-in/for-of iteration: goja's iterator protocol costs
	// several times a plain loop's.
	iterTick = "__gavel_tick8();"
	tickExpr = "__gavel_tick()"
	strCheck = `typeof __gavel_t === "string" ? __gavel_s(__gavel_t) : __gavel_t`
)

// meterSource binds the meter, once per sandbox: global lexical bindings,
// which every module shares and no script can name (reserved names; no
// eval, no Function). A sandbox runs one call at a time; the driver clears
// the temporaries at the start of each call (__gavel_begin), and they are
// always written before they are read.
const meterSource = `let __gavel_t, __gavel_o, __gavel_r;
const __gavel_tick = __gavel_host.tick, __gavel_tick8 = __gavel_host.tick8, __gavel_s = __gavel_host.str, __gavel_tpl = __gavel_host.tpl, __gavel_key = __gavel_host.key;
const __gavel_begin = () => { __gavel_t = __gavel_o = __gavel_r = undefined; };
const __gavel_ref = (o, k) => ({ o, k: __gavel_key(k) });
`

// errNotInstrumentable is a bundle whose source positions do not fit what
// the instrumenter expects; it fails closed (the script does not compile).
var errNotInstrumentable = errors.New("the compiled script cannot be instrumented")

// edit replaces src[at:end] (an insertion when end == at).
type edit struct {
	at, end int
	text    string
	// class orders edits at the same offset: closers (0) before
	// replacements (1) before openers (2); openers shallow first, closers
	// deep first.
	class, depth int
}

type instrumenter struct {
	src   string
	edits []edit
	err   error
	seen  map[any]bool // the parser shares some nodes between parents
}

// instrument rewrites esbuild's IIFE bundle for metering. It returns the
// rewritten IIFE.
func instrument(iife string) (string, error) {
	prog, err := parser.ParseFile(nil, "bundle.js", iife, 0)
	if err != nil {
		return "", err
	}
	if _, err := iifeBody(prog); err != nil {
		return "", err
	}
	in := &instrumenter{src: iife, seen: map[any]bool{}}
	in.walk(reflect.ValueOf(prog), 0)
	if in.err != nil {
		return "", in.err
	}
	return in.apply()
}

func (in *instrumenter) fail(format string, args ...any) {
	if in.err == nil {
		in.err = fmt.Errorf(format, args...)
	}
}

func (in *instrumenter) open(at, depth int, text string) {
	in.edits = append(in.edits, edit{at: at, end: at, text: text, class: 2, depth: depth})
}

func (in *instrumenter) close(at, depth int, text string) {
	in.edits = append(in.edits, edit{at: at, end: at, text: text, class: 0, depth: depth})
}

func (in *instrumenter) replace(at, end int, text string) {
	in.edits = append(in.edits, edit{at: at, end: end, text: text, class: 1})
}

func (in *instrumenter) apply() (string, error) {
	slices.SortStableFunc(in.edits, func(a, b edit) int {
		if a.at != b.at {
			return a.at - b.at
		}
		if a.class != b.class {
			return a.class - b.class
		}
		if a.class == 2 {
			return a.depth - b.depth
		}
		return b.depth - a.depth
	})
	var b strings.Builder
	pos := 0
	for _, e := range in.edits {
		if e.at < pos {
			return "", fmt.Errorf("%w: overlapping edits", errNotInstrumentable)
		}
		b.WriteString(in.src[pos:e.at])
		b.WriteString(e.text)
		pos = max(pos, e.end)
	}
	b.WriteString(in.src[pos:])
	return b.String(), nil
}

func start(n ast.Node) int { return int(n.Idx0()) - 1 }
func end(n ast.Node) int {
	if p, ok := n.(*ast.PrivateDotExpression); ok {
		// The parser's end of #name leaves out the #.
		return start(&p.Identifier) + 1 + len(p.Identifier.Name)
	}
	return int(n.Idx1()) - 1
}

// skip moves past white space and comments from i.
func (in *instrumenter) skip(i int) int {
	s := in.src
	for i < len(s) {
		switch {
		case s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r':
			i++
		case strings.HasPrefix(s[i:], "/*"):
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return len(s)
			}
			i += j + 4
		case strings.HasPrefix(s[i:], "//"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				return len(s)
			}
			i += j + 1
		default:
			return i
		}
	}
	return i
}

// skipBack moves back over white space before i.
func (in *instrumenter) skipBack(i int) int {
	for i > 0 && strings.IndexByte(" \t\n\r", in.src[i-1]) >= 0 {
		i--
	}
	return i
}

// operands finds, for a binary operator between left and right, where the
// operator is and the full extent of the expression including any
// parentheses around either operand (the parser drops them).
func (in *instrumenter) operands(left, right ast.Node, op string) (from, opAt, to int, ok bool) {
	i, closes := end(left), 0
	for {
		i = in.skip(i)
		if i < len(in.src) && in.src[i] == ')' {
			closes++
			i++
			continue
		}
		break
	}
	if !strings.HasPrefix(in.src[i:], op) {
		return 0, 0, 0, false
	}
	opAt = i
	opens := strings.Count(in.src[i+len(op):start(right)], "(")
	from = start(left)
	for range closes {
		from = in.skipBack(from)
		if from == 0 || in.src[from-1] != '(' {
			return 0, 0, 0, false
		}
		from--
	}
	to = end(right)
	for range opens {
		to = in.skip(to)
		if to >= len(in.src) || in.src[to] != ')' {
			return 0, 0, 0, false
		}
		to++
	}
	return from, opAt, to, true
}

// stmtEnd is where statement s ends, its semicolon included.
func (in *instrumenter) stmtEnd(s ast.Statement) int {
	e := end(s)
	if j := in.skip(e); j < len(in.src) && in.src[j] == ';' {
		return j + 1
	}
	return e
}

func (in *instrumenter) loopBody(body ast.Statement, depth int, tick string) {
	if b, ok := body.(*ast.BlockStatement); ok {
		in.open(start(b)+1, depth, tick)
		return
	}
	if es, ok := body.(*ast.ExpressionStatement); ok {
		// The parser drops parentheses around the expression: wrap the
		// expression itself, not the statement.
		in.open(start(es.Expression), depth, "("+strings.TrimSuffix(tick, ";")+", ")
		in.close(end(es.Expression), depth, ")")
		return
	}
	in.open(start(body), depth, "{"+tick)
	in.close(in.stmtEnd(body), depth, "}")
}

var astPkg = reflect.TypeOf(ast.Program{}).PkgPath()

// walk visits every node under v, depth first, instrumenting as it goes.
func (in *instrumenter) walk(v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return
		}
		if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct && v.Elem().Type().PkgPath() == astPkg {
			n := v.Interface()
			if in.seen[n] {
				return
			}
			in.seen[n] = true
			in.visit(n, depth)
		}
		in.walk(v.Elem(), depth+1)
	case reflect.Struct:
		if v.Type().PkgPath() != astPkg {
			return
		}
		for i := range v.NumField() {
			if f := v.Field(i); f.CanInterface() {
				in.walk(f, depth)
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			in.walk(v.Index(i), depth)
		}
	}
}

func (in *instrumenter) visit(n any, d int) {
	switch x := n.(type) {
	case *ast.Identifier:
		name := string(x.Name)
		if strings.HasPrefix(name, reservedPrefix) && name != exportHook {
			in.fail("the name %s is reserved: names starting with %s are gavel's", name, reservedPrefix)
		}
		if !isASCII(name) {
			// The parser's end positions of such names are not byte offsets.
			in.fail("identifiers must be ASCII, not %q", name)
		}
	case *ast.NumberLiteral:
		if _, big := x.Value.(*big.Int); big || strings.HasSuffix(x.Literal, "n") {
			in.fail("BigInt is not available in gavel scripts (its arithmetic cannot be metered)")
		}
	case *ast.FunctionLiteral:
		if x.Body != nil {
			in.open(start(x.Body)+1, d, tick)
		}
	case *ast.ArrowFunctionLiteral:
		switch b := x.Body.(type) {
		case *ast.BlockStatement:
			in.open(start(b)+1, d, tick)
		case *ast.ExpressionBody:
			in.open(start(b.Expression), d, "("+tickExpr+", ")
			in.close(end(b.Expression), d, ")")
		}
	case *ast.ClassStaticBlock:
		in.open(start(x.Block)+1, d, tick)
	case *ast.ForStatement:
		in.loopBody(x.Body, d, tick)
	case *ast.ForInStatement:
		in.loopBody(x.Body, d, iterTick)
	case *ast.ForOfStatement:
		in.loopBody(x.Body, d, iterTick)
	case *ast.WhileStatement:
		in.loopBody(x.Body, d, tick)
	case *ast.DoWhileStatement:
		in.loopBody(x.Body, d, tick)
	case *ast.TemplateLiteral:
		if x.Tag == nil && len(x.Expressions) > 0 {
			in.template(x, d)
		}
	case *ast.BinaryExpression:
		if x.Operator == token.PLUS && !(isNumber(x.Left) && isNumber(x.Right)) {
			from, _, to, ok := in.operands(x.Left, x.Right, "+")
			if !ok {
				in.fail("%w: +", errNotInstrumentable)
				return
			}
			in.open(from, d, "(__gavel_t = ")
			in.close(to, d, ", "+strCheck+")")
		}
	case *ast.AssignExpression:
		if x.Operator == token.PLUS {
			in.addAssign(x, d)
		}
	}
}

func isNumber(e ast.Expression) bool {
	_, ok := e.(*ast.NumberLiteral)
	return ok
}

// template turns `a${x}b` into __gavel_tpl(`a`, (x), `b`): the host
// converts each part with ToString and checks the total before joining.
func (in *instrumenter) template(x *ast.TemplateLiteral, d int) {
	if len(x.Elements) != len(x.Expressions)+1 {
		in.fail("%w: template", errNotInstrumentable)
		return
	}
	in.open(int(x.OpenQuote)-1, d, "__gavel_tpl(")
	for i, e := range x.Expressions {
		el := x.Elements[i]
		at := int(el.Idx) - 2 + len(el.Literal) // goja: Idx is one past the 1-based start
		if !strings.HasPrefix(in.src[at:], "${") {
			in.fail("%w: template", errNotInstrumentable)
			return
		}
		in.replace(at, at+2, "`, (")
		j := end(e)
		for {
			j = in.skip(j)
			if j < len(in.src) && in.src[j] == ')' {
				j++
				continue
			}
			break
		}
		if j >= len(in.src) || in.src[j] != '}' {
			in.fail("%w: template", errNotInstrumentable)
			return
		}
		in.replace(j, j+1, "), `")
	}
	in.close(int(x.CloseQuote), d, ")")
}

// addAssign rewrites t += v so that the sum is checked before it is
// stored: a string over the limit is never kept, even by a script that
// catches the RangeError and tries again.
func (in *instrumenter) addAssign(x *ast.AssignExpression, d int) {
	from, opAt, to, ok := in.operands(x.Left, x.Right, "+=")
	if !ok {
		in.fail("%w: +=", errNotInstrumentable)
		return
	}
	// The right side binds looser than +: parenthesise it (a += b = c).
	closing := "), " + strCheck + ")"
	if _, id := x.Left.(*ast.Identifier); !id && in.skip(end(x.Left)) != opAt {
		in.fail("%w: += to a parenthesised target", errNotInstrumentable)
		return
	}
	switch t := x.Left.(type) {
	case *ast.Identifier:
		in.replace(opAt, opAt+2, "= (__gavel_t = "+string(t.Name)+" + (")
		in.close(to, d, closing)
	case *ast.DotExpression:
		if _, ok := t.Left.(*ast.SuperExpression); ok {
			in.fail("compound assignment to a super property is not supported")
			return
		}
		dot := in.skipBack(start(&t.Identifier))
		if dot == 0 || in.src[dot-1] != '.' {
			in.fail("%w: +=", errNotInstrumentable)
			return
		}
		name := string(t.Identifier.Name)
		in.open(from, d, "(__gavel_o = ")
		in.replace(dot-1, opAt+2, ", __gavel_o."+name+" = (__gavel_t = __gavel_o."+name+" + (")
		in.close(to, d, closing+")")
	case *ast.PrivateDotExpression:
		dot := in.skipBack(start(&t.Identifier))
		if dot == 0 || in.src[dot-1] != '.' {
			in.fail("%w: +=", errNotInstrumentable)
			return
		}
		name := "#" + string(t.Identifier.Name)
		in.open(from, d, "(__gavel_o = ")
		in.replace(dot-1, opAt+2, ", __gavel_o."+name+" = (__gavel_t = __gavel_o."+name+" + (")
		in.close(to, d, closing+")")
	case *ast.BracketExpression:
		if _, ok := t.Left.(*ast.SuperExpression); ok {
			in.fail("compound assignment to a super property is not supported")
			return
		}
		// (r = ref(o, k), r.o[r.k] = (t = r.o[r.k] + v, check)): the target's
		// base is evaluated before v, so nested rewrites in v cannot
		// disturb it.
		lb, rb := int(t.LeftBracket)-1, int(t.RightBracket)-1
		if in.src[lb] != '[' || in.src[rb] != ']' {
			in.fail("%w: +=", errNotInstrumentable)
			return
		}
		in.open(from, d, "(__gavel_r = __gavel_ref(")
		in.replace(lb, lb+1, ", ")
		in.replace(rb, opAt+2, "), __gavel_r.o[__gavel_r.k] = (__gavel_t = __gavel_r.o[__gavel_r.k] + (")
		in.close(to, d, closing+")")
	default:
		in.fail("%w: += to a %T", errNotInstrumentable, x.Left)
	}
}

// iifeBody checks the bundle is esbuild's IIFE: "(() => { … })();".
func iifeBody(prog *ast.Program) (*ast.BlockStatement, error) {
	if len(prog.Body) == 1 {
		if es, ok := prog.Body[0].(*ast.ExpressionStatement); ok {
			if call, ok := es.Expression.(*ast.CallExpression); ok && len(call.ArgumentList) == 0 {
				switch f := call.Callee.(type) {
				case *ast.ArrowFunctionLiteral:
					if b, ok := f.Body.(*ast.BlockStatement); ok {
						return b, nil
					}
				case *ast.FunctionLiteral:
					return f.Body, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("bundle is not an IIFE")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

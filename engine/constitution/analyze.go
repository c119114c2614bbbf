package constitution

import (
	"fmt"
	"reflect"

	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/parser"
	"github.com/dop251/goja/token"
)

// Module instances are reused across calls when that provably cannot carry
// state from one call to the next. Every bundle's top-level values are
// deep-frozen once the module is instantiated (in every mode, so a script
// behaves the same whether or not it is reused); a bundle is then reusable
// if, statically:
//
//   - instantiation runs no code beyond building literals, functions and
//     classes (no calls, no getters, no spreads, no static initialisers), so
//     every object it creates is reachable from a top-level binding and gets
//     frozen, and no closure captures anything but the top-level scope; and
//   - no function ever assigns to a name bound at the top level (checked by
//     name, conservatively, ignoring shadowing);
//
// and, at instantiation, no reachable value holds state that freezing does
// not fix (Map, Set, Date, typed arrays, proxies …). Otherwise the bundle is
// instantiated afresh for every call, which is always isolated but slower.

type bundleShape struct {
	names    []string // top-level bindings, frozen after instantiation
	insertAt int      // byte offset where the freeze call goes (before the IIFE's closing brace)
	reusable bool
	reason   string // why not reusable
}

// analyzeBundle inspects esbuild's IIFE output: "(() => { … })();".
func analyzeBundle(iife string) (bundleShape, error) {
	prog, err := parser.ParseFile(nil, "bundle.js", iife, 0)
	if err != nil {
		return bundleShape{}, err
	}
	body, err := iifeBody(prog)
	if err != nil {
		return bundleShape{}, err
	}
	shape := bundleShape{insertAt: int(body.RightBrace) - 1, reusable: true}
	if shape.insertAt < 0 || shape.insertAt >= len(iife) || iife[shape.insertAt] != '}' {
		return bundleShape{}, fmt.Errorf("cannot locate the end of the bundle")
	}
	notReusable := func(format string, args ...any) {
		if shape.reusable {
			shape.reusable = false
			shape.reason = fmt.Sprintf(format, args...)
		}
	}
	top := map[string]bool{}
	bind := func(name string) {
		if !top[name] {
			top[name] = true
			shape.names = append(shape.names, name)
		}
	}
	for i, st := range body.List {
		switch s := st.(type) {
		case *ast.FunctionDeclaration:
			bind(string(s.Function.Name.Name))
		case *ast.ClassDeclaration:
			bind(string(s.Class.Name.Name))
			if why := classInert(s.Class); why != "" {
				notReusable("class %s %s", s.Class.Name.Name, why)
			}
		case *ast.VariableStatement:
			bindAll(s.List, bind, notReusable)
		case *ast.LexicalDeclaration:
			bindAll(s.List, bind, notReusable)
		case *ast.EmptyStatement:
		case *ast.ExpressionStatement:
			if i != len(body.List)-1 || !isExportHookCall(s.Expression) {
				notReusable("its top level runs a statement at load time")
			}
		default:
			notReusable("its top level runs a %T at load time", st)
		}
	}
	for name := range assignedNames(body) {
		if top[name] {
			notReusable("a function assigns to the top-level binding %q", name)
		}
	}
	return shape, nil
}

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

func bindAll(list []*ast.Binding, bind func(string), notReusable func(string, ...any)) {
	for _, b := range list {
		id, ok := b.Target.(*ast.Identifier)
		if !ok {
			notReusable("its top level destructures")
			collectTargets(b.Target, bind)
			continue
		}
		bind(string(id.Name))
		if b.Initializer != nil && !inert(b.Initializer) {
			notReusable("%s is initialised by running code", id.Name)
		}
	}
}

func isExportHookCall(e ast.Expression) bool {
	call, ok := e.(*ast.CallExpression)
	if !ok || len(call.ArgumentList) != 1 {
		return false
	}
	callee, ok := call.Callee.(*ast.Identifier)
	if !ok || callee.Name != exportHook {
		return false
	}
	return inert(call.ArgumentList[0])
}

// inert reports whether evaluating e can run no script code: literals,
// identifiers, functions, classes without static initialisers, and object
// and array literals of those (no spreads, computed keys or templates with
// substitutions, which could call getters, iterators or toString).
func inert(e ast.Expression) bool {
	switch x := e.(type) {
	case nil:
		return true
	case *ast.StringLiteral, *ast.NumberLiteral, *ast.BooleanLiteral, *ast.NullLiteral,
		*ast.RegExpLiteral, *ast.Identifier, *ast.FunctionLiteral, *ast.ArrowFunctionLiteral:
		return true
	case *ast.TemplateLiteral:
		return x.Tag == nil && len(x.Expressions) == 0
	case *ast.ClassLiteral:
		return classInert(x) == ""
	case *ast.ArrayLiteral:
		for _, v := range x.Value {
			if _, spread := v.(*ast.SpreadElement); spread || !inert(v) {
				return false
			}
		}
		return true
	case *ast.ObjectLiteral:
		for _, p := range x.Value {
			switch p := p.(type) {
			case *ast.PropertyShort:
				if p.Initializer != nil {
					return false
				}
			case *ast.PropertyKeyed:
				if p.Computed && !isLiteral(p.Key) || !inert(p.Value) {
					return false
				}
			default:
				return false
			}
		}
		return true
	case *ast.UnaryExpression:
		switch x.Operator {
		case token.MINUS, token.PLUS:
			_, num := x.Operand.(*ast.NumberLiteral)
			return num
		case token.NOT, token.VOID, token.TYPEOF:
			return inert(x.Operand)
		}
		return false
	case *ast.ConditionalExpression:
		return inert(x.Test) && inert(x.Consequent) && inert(x.Alternate)
	case *ast.BinaryExpression:
		switch x.Operator {
		case token.LOGICAL_AND, token.LOGICAL_OR, token.COALESCE:
			return inert(x.Left) && inert(x.Right)
		}
		return false
	case *ast.SequenceExpression:
		for _, s := range x.Sequence {
			if !inert(s) {
				return false
			}
		}
		return true
	}
	return false
}

func isLiteral(e ast.Expression) bool {
	switch e.(type) {
	case *ast.StringLiteral, *ast.NumberLiteral:
		return true
	}
	return false
}

// classInert is "" if defining the class runs no script code.
func classInert(c *ast.ClassLiteral) string {
	if c.SuperClass != nil {
		if _, ok := c.SuperClass.(*ast.Identifier); !ok {
			return "extends a computed value"
		}
	}
	for _, el := range c.Body {
		switch m := el.(type) {
		case *ast.MethodDefinition:
			if m.Computed && !isLiteral(m.Key) {
				return "has a computed method name"
			}
		case *ast.FieldDefinition:
			if m.Computed && !isLiteral(m.Key) {
				return "has a computed field name"
			}
			if m.Static && m.Initializer != nil {
				return "has a static field initialiser"
			}
		case *ast.ClassStaticBlock:
			return "has a static block"
		}
	}
	return ""
}

// assignedNames lists every identifier the code assigns to (=, op=, ++,
// --, destructuring assignment, for-in/of heads), anywhere.
func assignedNames(root ast.Node) map[string]bool {
	out := map[string]bool{}
	add := func(n string) { out[n] = true }
	walkAST(reflect.ValueOf(root), func(n any) {
		switch x := n.(type) {
		case *ast.AssignExpression:
			collectTargets(x.Left, add)
		case *ast.UnaryExpression:
			if x.Operator == token.INCREMENT || x.Operator == token.DECREMENT {
				collectTargets(x.Operand, add)
			}
		case *ast.ForIntoExpression:
			collectTargets(x.Expression, add)
		}
	})
	return out
}

// collectTargets names the identifiers an assignment target writes;
// member expressions write no binding.
func collectTargets(e ast.Expression, add func(string)) {
	switch x := e.(type) {
	case *ast.Identifier:
		add(string(x.Name))
	case *ast.ArrayPattern:
		for _, el := range x.Elements {
			collectTargets(el, add)
		}
		collectTargets(x.Rest, add)
	case *ast.ArrayLiteral:
		for _, el := range x.Value {
			collectTargets(el, add)
		}
	case *ast.ObjectPattern:
		for _, p := range x.Properties {
			collectTargets(p, add)
		}
		collectTargets(x.Rest, add)
	case *ast.ObjectLiteral:
		for _, p := range x.Value {
			collectTargets(p, add)
		}
	case *ast.PropertyShort:
		add(string(x.Name.Name))
	case *ast.PropertyKeyed:
		collectTargets(x.Value, add)
	case *ast.SpreadElement:
		collectTargets(x.Expression, add)
	case *ast.AssignExpression: // a default: [a = 1] = …
		collectTargets(x.Left, add)
	}
}

var astPkg = reflect.TypeOf(ast.Program{}).PkgPath()

// walkAST visits every AST node under v (depth first), following the
// fields of goja's ast types.
func walkAST(v reflect.Value, visit func(any)) {
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return
		}
		if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct && v.Elem().Type().PkgPath() == astPkg {
			visit(v.Interface())
		}
		walkAST(v.Elem(), visit)
	case reflect.Struct:
		if v.Type().PkgPath() != astPkg {
			return
		}
		for i := range v.NumField() {
			if f := v.Field(i); f.CanInterface() {
				walkAST(f, visit)
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			walkAST(v.Index(i), visit)
		}
	}
}

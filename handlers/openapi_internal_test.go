package handlers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// sourcePatterns are the mux patterns registered in this package's source:
// the string literal first argument of every HandleFunc and route call.
func sourcePatterns(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			var fn string
			switch f := call.Fun.(type) {
			case *ast.SelectorExpr:
				fn = f.Sel.Name
			case *ast.Ident:
				fn = f.Name
			}
			if fn != "HandleFunc" && fn != "Handle" && fn != "route" {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				p, _ := strconv.Unquote(lit.Value)
				out = append(out, p)
			}
			return true
		})
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestOpenAPICoversTheRouter walks the router and the document both ways:
// every registered pattern is documented, every documented operation is a
// registered pattern, and each documented path, filled in, is served by
// the pattern the document names.
func TestOpenAPICoversTheRouter(t *testing.T) {
	registered := sourcePatterns(t)
	if len(registered) < 40 {
		t.Fatalf("found only %d patterns in the source: %v", len(registered), registered)
	}
	var documented []string
	for _, op := range operations() {
		documented = append(documented, op.Pattern)
	}
	slices.Sort(documented)
	documented = slices.Compact(documented)
	for _, p := range registered {
		if !slices.Contains(documented, p) {
			t.Errorf("route %q is not in the OpenAPI document", p)
		}
	}
	for _, p := range documented {
		if !slices.Contains(registered, p) {
			t.Errorf("documented %q is not a route", p)
		}
	}
	// A service with every optional part, so that every route is registered.
	var svc struct {
		Service
		NetworkMap
		Leadership
	}
	h := NewHTTP(svc, DefaultLimits(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	seen := map[string]bool{}
	for _, op := range operations() {
		key := op.method() + " " + op.path()
		if seen[key] {
			t.Errorf("%s is documented twice", key)
		}
		seen[key] = true
		concrete := op.path()
		for _, name := range pathParams(concrete) {
			concrete = strings.Replace(concrete, "{"+name+"}", "p-"+name, 1)
		}
		req := httptest.NewRequest(op.method(), concrete, nil)
		if _, pattern := h.mux.Handler(req); pattern != op.Pattern {
			t.Errorf("%s %s is served by %q, the document says %q", op.method(), concrete, pattern, op.Pattern)
		}
	}
}

package schemas

import (
	"bytes"
	"embed"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/gavelhq/gavel/engine"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// FS holds the schema files, for serving at /schemas/.
//
//go:embed *.json actions/*.json answers/*.json *.cddl
var FS embed.FS

// CodeSchemaViolation is the error code of a value its schema rejects.
const CodeSchemaViolation = "SchemaViolation"

const baseURL = "gavel:///schemas/"

var compiled = sync.OnceValues(compileAll)

var printer = message.NewPrinter(language.English)

// compileAll compiles every embedded schema once; a broken embedded schema
// is a build fault, reported by every Validate call and by the tests.
func compileAll() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	names := Names()
	for _, name := range names {
		raw, err := FS.ReadFile(name + ".json")
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		if err := c.AddResource(baseURL+name+".json", doc); err != nil {
			return nil, err
		}
	}
	out := make(map[string]*jsonschema.Schema, len(names))
	for _, name := range names {
		s, err := c.Compile(baseURL + name + ".json")
		if err != nil {
			return nil, err
		}
		out[name] = s
	}
	return out, nil
}

// Names lists the embedded schemas, sorted.
func Names() []string {
	var names []string
	_ = fs.WalkDir(FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && path.Ext(p) == ".json" {
			names = append(names, strings.TrimSuffix(p, ".json"))
		}
		return nil
	})
	slices.Sort(names)
	return names
}

// Has reports whether a schema of that name exists.
func Has(name string) bool {
	m, err := compiled()
	if err != nil {
		return false
	}
	_, ok := m[name]
	return ok
}

// Validate checks a decoded JSON value (nil, bool, json.Number or float64,
// string, []any, map[string]any) against the named schema. A rejection is a
// KindInvalid *engine.Error with code SchemaViolation whose message lists
// each failure as "at '<json pointer>': <reason>", sorted, so equal inputs
// give equal messages.
func Validate(name string, value any) error {
	m, err := compiled()
	if err != nil {
		return engine.Wrap(engine.KindInternal, "SchemaCompileError", err, "embedded schemas do not compile")
	}
	s, ok := m[name]
	if !ok {
		return engine.Errorf(engine.KindInternal, "UnknownSchema", "no schema named %q", name)
	}
	err = s.Validate(value)
	if err == nil {
		return nil
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return engine.Wrap(engine.KindInvalid, CodeSchemaViolation, err, "%s", name)
	}
	return engine.Errorf(engine.KindInvalid, CodeSchemaViolation, "%s", Describe(ve))
}

// ValidateJSON decodes data (numbers kept exact) and validates it.
func ValidateJSON(name string, data []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return engine.Wrap(engine.KindInvalid, "InvalidJSON", err, "%s: body is not JSON", name)
	}
	return Validate(name, v)
}

// Describe flattens a validation error into its leaf failures, sorted and
// de-duplicated, joined by "; ".
func Describe(ve *jsonschema.ValidationError) string {
	var leaves []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			leaves = append(leaves, "at '"+pointer(e.InstanceLocation)+"': "+e.ErrorKind.LocalizedString(printer))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	slices.Sort(leaves)
	return strings.Join(slices.Compact(leaves), "; ")
}

func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		b.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return b.String()
}

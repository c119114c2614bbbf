package handlers

import (
	"encoding/json"
	"io/fs"
	"path"
	"reflect"
	"strings"
	"time"

	"github.com/gavelhq/gavel/schemas"
)

// schemaComponents turns the embedded JSON Schemas (schemas/) into OpenAPI
// components: one per file ("answers/Proposal" → "answers.Proposal") and
// one per $defs entry ("answers.ccf.Proposal"), every $ref rewritten to
// point into #/components/schemas, so the document stands alone.
func schemaComponents() (map[string]any, error) {
	out := map[string]any{}
	for _, name := range schemas.Names() {
		raw, err := fs.ReadFile(schemas.FS, name+".json")
		if err != nil {
			return nil, err
		}
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, err
		}
		delete(doc, "$schema")
		defs, _ := doc["$defs"].(map[string]any)
		delete(doc, "$defs")
		out[componentName(name)] = rewriteRefs(doc, name)
		for d, v := range defs {
			out[componentName(name)+"."+d] = rewriteRefs(v, name)
		}
	}
	return out, nil
}

func componentName(file string) string { return strings.ReplaceAll(file, "/", ".") }

func componentRef(name string) map[string]any {
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

// rewriteRefs rewrites the $refs of v, read from the schema file named
// file, into component references.
func rewriteRefs(v any, file string) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				out[k] = "#/components/schemas/" + refComponent(s, file)
				continue
			}
			out[k] = rewriteRefs(x, file)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = rewriteRefs(x, file)
		}
		return out
	default:
		return v
	}
}

// refComponent is the component a $ref names: "#/$defs/X" in file F is
// "F.X"; "other.json#/$defs/X" is "other.X" (relative to F's folder).
func refComponent(ref, file string) string {
	target, frag, _ := strings.Cut(ref, "#")
	name := file
	if target != "" {
		name = strings.TrimSuffix(path.Join(path.Dir(file), target), ".json")
	}
	if def, ok := strings.CutPrefix(frag, "/$defs/"); ok {
		return componentName(name) + "." + def
	}
	return componentName(name)
}

// goSchema is the JSON Schema of what encoding/json makes of t: the answers
// that are Go types rather than files in schemas/. Fields without
// omitempty are required; nil slices and maps are null, as json encodes them.
func goSchema(t reflect.Type) map[string]any {
	switch t {
	case reflect.TypeFor[time.Time]():
		return map[string]any{"type": "string", "format": "date-time"}
	case reflect.TypeFor[json.RawMessage]():
		return map[string]any{}
	case reflect.TypeFor[[]byte]():
		return map[string]any{"type": "string", "contentEncoding": "base64"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return map[string]any{"anyOf": []any{goSchema(t.Elem()), map[string]any{"type": "null"}}}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": []any{"array", "null"}, "items": goSchema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": []any{"object", "null"}, "additionalProperties": goSchema(t.Elem())}
	case reflect.Struct:
		props := map[string]any{}
		var required []any
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if name == "" {
				name = f.Name
			}
			props[name] = goSchema(f.Type)
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
				required = append(required, name)
			}
		}
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	default:
		return map[string]any{}
	}
}

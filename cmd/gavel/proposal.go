package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/schemas"
)

func init() {
	register("member proposal", "print a proposal for one action, its arguments typed and checked by the service's schema", runMemberProposal)
}

// actionName is what an action schema may be fetched under: a plain name,
// so it cannot walk the service's /schemas/ tree.
var actionName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,127}$`)

// kvFlag collects repeated k=v flags in order.
type kvFlag struct {
	flag string
	kvs  *[]argValue
}

// argValue is one --arg, --arg-json or --arg-file.
type argValue struct{ flag, key, value string }

func (f kvFlag) String() string { return "" }
func (f kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	*f.kvs = append(*f.kvs, argValue{flag: f.flag, key: k, value: v})
	return nil
}

func runMemberProposal(args []string, out, errOut io.Writer) int {
	fs := newFlags("member proposal", errOut)
	url := fs.String("url", "http://127.0.0.1:8080", "the service whose action schemas type and check the arguments")
	var kvs []argValue
	fs.Var(kvFlag{"arg", &kvs}, "arg", "KEY=VALUE: an argument, typed by its schema (string, integer, number, boolean; JSON for objects and arrays)")
	fs.Var(kvFlag{"arg-json", &kvs}, "arg-json", "KEY=JSON: an argument given as JSON, whatever its schema type")
	fs.Var(kvFlag{"arg-file", &kvs}, "arg-file", "KEY=FILE: an argument read from a file (a string; parsed as JSON where the schema wants an object or array)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: gavel member proposal [--url U] ACTION [--arg KEY=VALUE]... [--arg-json KEY=JSON]... [--arg-file KEY=FILE]...

Prints {"actions":[{"name":ACTION,"args":{…}}]} for one action of the
constitution in force. The action's argument schema is read from the
service's /schemas/actions/ACTION.json; each value is typed by it and the
whole is validated against it before anything is printed.

example:
  gavel member proposal --url "$GAVEL_URL" set_member --arg-file cert=alice_cert.pem \
    | gavel member propose --url "$GAVEL_URL" --cert member0_cert.pem --key member0_privk.pem -
  gavel member proposal set_service_configuration --arg max_open_proposals=50

flags:
`)
		fs.PrintDefaults()
	}
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(errOut, fs, "one ACTION is required")
	}
	action := pos[0]
	if !actionName.MatchString(action) {
		return usageError(errOut, fs, "%q is not an action name", action)
	}
	raw, err := fetchActionSchema(context.Background(), *url, action)
	if errors.Is(err, errUnknownAction) {
		return usageError(errOut, fs, "unknown action %q: the service has no schema /schemas/actions/%s.json", action, action)
	}
	if err != nil {
		return failf(errOut, "%v", err)
	}
	argsObj, err := buildArgs(raw, kvs)
	if err != nil {
		return usageError(errOut, fs, "%s: %v", action, err)
	}
	body, err := json.Marshal(map[string]any{"actions": []any{map[string]any{"name": action, "args": argsObj}}})
	if err != nil {
		return failf(errOut, "%v", err)
	}
	fmt.Fprintf(out, "%s\n", body)
	return exitOK
}

var errUnknownAction = errors.New("unknown action")

// fetchActionSchema reads an action's argument schema from the service.
func fetchActionSchema(ctx context.Context, url, action string) ([]byte, error) {
	c := client.New(url, client.WithHTTPClient(httpClient))
	a, err := c.Do(ctx, http.MethodGet, "/schemas/actions/"+action+".json", "", nil)
	var e *engine.Error
	if errors.As(err, &e) && e.Kind == engine.KindNotFound {
		return nil, errUnknownAction
	}
	if err != nil {
		return nil, err
	}
	return a.Body, nil
}

// schemaDoc is the part of an action schema that types values.
type schemaDoc struct {
	Properties map[string]struct {
		Type any `json:"type"`
	} `json:"properties"`
}

// buildArgs types each value by the schema's property type and validates
// the result; a refusal names the field.
func buildArgs(raw []byte, kvs []argValue) (map[string]any, error) {
	var doc schemaDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("the service's schema is not JSON: %v", err)
	}
	args := map[string]any{}
	for _, kv := range kvs {
		if _, dup := args[kv.key]; dup {
			return nil, fmt.Errorf("argument %q given twice", kv.key)
		}
		typ := ""
		if p, ok := doc.Properties[kv.key]; ok {
			typ, _ = p.Type.(string)
		}
		v, err := typedValue(kv, typ)
		if err != nil {
			return nil, fmt.Errorf("argument %q: %v", kv.key, err)
		}
		args[kv.key] = v
	}
	if err := validateArgs(raw, args); err != nil {
		return nil, err
	}
	return args, nil
}

func typedValue(kv argValue, typ string) (any, error) {
	s := kv.value
	switch kv.flag {
	case "arg-json":
		return decodeJSON([]byte(s))
	case "arg-file":
		b, err := os.ReadFile(s)
		if err != nil {
			return nil, err
		}
		if typ == "object" || typ == "array" {
			return decodeJSON(b)
		}
		return string(b), nil
	}
	switch typ {
	case "integer", "number":
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return json.Number(s), nil
	case "boolean":
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	case "object", "array", "null":
		return decodeJSON([]byte(s))
	}
	return s, nil
}

func decodeJSON(b []byte) (any, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	return v, nil
}

// validateArgs checks args against the service's schema with the same
// library the service uses, so what it prints the service accepts.
func validateArgs(raw []byte, args map[string]any) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource("action.json", doc); err != nil {
		return err
	}
	s, err := c.Compile("action.json")
	if err != nil {
		return fmt.Errorf("the service's schema does not compile: %v", err)
	}
	// Round-trip through JSON so values are in the validator's types.
	b, err := json.Marshal(args)
	if err != nil {
		return err
	}
	v, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	err = s.Validate(v)
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		return errors.New(schemas.Describe(ve))
	}
	return err
}

package constitution

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
)

// File names a constitution may be given as. Either one module that exports
// all three entry points, or one file per entry point (each exporting the
// function of its name); any file may import the others by relative path.
const (
	FileConstitution = "constitution.js"
	FileValidate     = "validate.js"
	FileResolve      = "resolve.js"
	FileApply        = "apply.js"
	fileBallot       = "ballot.js"
	entryPath        = "<entry>"
	pluginNamespace  = "gavel"
	// exportHook is the parameter the sandbox wraps around every bundle; the
	// synthesised entry hands the module's exports to it.
	exportHook = "__gavel_export"
)

// entrySource synthesises the bundle entry: it imports the entry points by
// name (so a missing export is a compile error) and hands them out, through
// the export hook (IIFE) or as ES exports (ESM).
func entrySource(files map[string]string, names []string, esm bool) (string, error) {
	var b strings.Builder
	single := FileConstitution
	if names[0] == "vote" {
		single = fileBallot
	}
	if _, ok := files[single]; ok {
		list := strings.Join(names, ", ")
		if esm {
			fmt.Fprintf(&b, "export { %s } from %q;\n", list, "./"+single)
		} else {
			fmt.Fprintf(&b, "import { %s } from %q;\n%s({ %s });\n", list, "./"+single, exportHook, list)
		}
		return b.String(), nil
	}
	for _, n := range names {
		if _, ok := files[n+".js"]; !ok {
			return "", fmt.Errorf("a constitution is %s, or %s, %s and %s: %s is missing", FileConstitution, FileValidate, FileResolve, FileApply, n+".js")
		}
		if esm {
			fmt.Fprintf(&b, "export { %s } from %q;\n", n, "./"+n+".js")
		} else {
			fmt.Fprintf(&b, "import { %s } from %q;\n", n, "./"+n+".js")
		}
	}
	if !esm {
		fmt.Fprintf(&b, "%s({ %s });\n", exportHook, strings.Join(names, ", "))
	}
	return b.String(), nil
}

// bundle runs esbuild over an in-memory file set. Imports must be relative
// paths to files of the set; nothing else (no packages, no file system, no
// network) can be reached.
func bundle(files map[string]string, names []string, esm bool) (string, error) {
	for name := range files {
		if !validFileName(name) {
			return "", fmt.Errorf("file name %q must be a relative path ending in .js, without . or .. segments", name)
		}
	}
	entry, err := entrySource(files, names, esm)
	if err != nil {
		return "", err
	}
	format := api.FormatIIFE
	if esm {
		format = api.FormatESModule
	}
	res := api.Build(api.BuildOptions{
		EntryPoints:   []string{entryPath},
		Bundle:        true,
		Write:         false,
		Format:        format,
		Platform:      api.PlatformNeutral,
		Target:        api.ES2022,
		Charset:       api.CharsetUTF8,
		LegalComments: api.LegalCommentsNone,
		LogLevel:      api.LogLevelSilent,
		Plugins:       []api.Plugin{memoryFS(files, entry)},
	})
	if len(res.Errors) > 0 {
		return "", buildError(res.Errors)
	}
	if len(res.OutputFiles) != 1 {
		return "", fmt.Errorf("esbuild produced %d outputs", len(res.OutputFiles))
	}
	return string(res.OutputFiles[0].Contents), nil
}

func validFileName(name string) bool {
	return strings.HasSuffix(name, ".js") && path.Clean(name) == name && !path.IsAbs(name) &&
		name != ".." && !strings.HasPrefix(name, "../") && !strings.Contains(name, "\\")
}

func memoryFS(files map[string]string, entry string) api.Plugin {
	return api.Plugin{
		Name: "gavel-memory-fs",
		Setup: func(b api.PluginBuild) {
			b.OnResolve(api.OnResolveOptions{Filter: ".*"}, func(a api.OnResolveArgs) (api.OnResolveResult, error) {
				if a.Kind == api.ResolveEntryPoint {
					return api.OnResolveResult{Path: entryPath, Namespace: pluginNamespace}, nil
				}
				if !strings.HasPrefix(a.Path, "./") && !strings.HasPrefix(a.Path, "../") {
					return api.OnResolveResult{}, fmt.Errorf("cannot import %q: only relative imports of the script's own files are allowed", a.Path)
				}
				dir := "."
				if a.Importer != entryPath {
					dir = path.Dir(a.Importer)
				}
				p := path.Join(dir, a.Path)
				for _, candidate := range []string{p, p + ".js"} {
					if _, ok := files[candidate]; ok && validFileName(candidate) {
						return api.OnResolveResult{Path: candidate, Namespace: pluginNamespace}, nil
					}
				}
				return api.OnResolveResult{}, fmt.Errorf("cannot import %q: no file %q", a.Path, p)
			})
			b.OnLoad(api.OnLoadOptions{Filter: ".*", Namespace: pluginNamespace}, func(a api.OnLoadArgs) (api.OnLoadResult, error) {
				src := entry
				if a.Path != entryPath {
					src = files[a.Path]
				}
				return api.OnLoadResult{Contents: &src, Loader: api.LoaderJS}, nil
			})
		},
	}
}

// buildError renders esbuild's messages as "file:line:col: text".
func buildError(msgs []api.Message) error {
	lines := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if m.Location != nil {
			lines = append(lines, fmt.Sprintf("%s:%d:%d: %s", m.Location.File, m.Location.Line, m.Location.Column, m.Text))
		} else {
			lines = append(lines, m.Text)
		}
	}
	slices.Sort(lines)
	return fmt.Errorf("%s", strings.Join(lines, "; "))
}

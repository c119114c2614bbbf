package scripts

import (
	"embed"
	"io/fs"
	"path"
	"strings"
)

//go:embed constitution/*.js constitution/README.md
var files embed.FS

// FS is the scripts tree, read-only.
var FS fs.FS = files

// Constitution returns the default constitution's files by name, ready for
// constitution.Compile or constitution.Bundle.
func Constitution() map[string]string {
	out := map[string]string{}
	entries, _ := fs.ReadDir(files, "constitution")
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".js") {
			continue
		}
		b, err := files.ReadFile(path.Join("constitution", e.Name()))
		if err != nil {
			panic("scripts: embedded file unreadable: " + err.Error())
		}
		out[e.Name()] = string(b)
	}
	return out
}

package scripts

import (
	"io/fs"
	"testing"
)

func TestConstitutionFiles(t *testing.T) {
	files := Constitution()
	for _, name := range []string{"actions.js", "apply.js", "resolve.js", "tables.js", "validate.js"} {
		if files[name] == "" {
			t.Errorf("%s is missing or empty", name)
		}
	}
	if _, ok := files["README.md"]; ok {
		t.Error("README.md is not a module")
	}
	if _, err := fs.ReadFile(FS, "constitution/README.md"); err != nil {
		t.Error(err)
	}
}

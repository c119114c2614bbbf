package constitution

import (
	"testing"

	"github.com/gavelhq/gavel/scripts"
)

func TestDumpBundle(t *testing.T) {
	out, err := bundle(scripts.Constitution(), entryPoints, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(out)
}

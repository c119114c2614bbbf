package gov

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
)

// Constitution compiles the constitution in force in st. Compiled
// constitutions are cached by source hash, so this costs a map lookup.
func Constitution(st engine.StateReader) (*constitution.Constitution, error) {
	src, err := ConstitutionSource(st)
	if err != nil {
		return nil, err
	}
	c, err := constitution.CompileModule(src)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "ConstitutionBroken", err, "the constitution in force does not compile")
	}
	return c, nil
}

// ConstitutionSource is the constitution module in force.
func ConstitutionSource(st engine.StateReader) (string, error) {
	b, ok, err := st.Get(constitution.TableConstitution, "")
	if err != nil {
		return "", err
	}
	if !ok {
		return "", engine.Errorf(engine.KindInternal, "NoConstitution", "the service has no constitution")
	}
	var src string
	if err := json.Unmarshal(b, &src); err != nil {
		return "", fmt.Errorf("gov: constitution record: %w", err)
	}
	return src, nil
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

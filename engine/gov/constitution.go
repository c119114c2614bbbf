package gov

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/internal/bounded"
)

// compiled keeps compiled constitutions by the digest of their record.
var compiled = bounded.New[engine.Digest, *constitution.Constitution](16)

// Constitution is the compiled constitution in force in st.
func Constitution(st engine.StateReader) (*constitution.Constitution, error) {
	var digest engine.Digest
	d, ok, err := st.Get(TableConstitutionDigest, "")
	if err != nil {
		return nil, err
	}
	if ok && len(d) == len(digest) {
		copy(digest[:], d)
		if c, ok := compiled.Get(digest); ok {
			return c, nil
		}
	}
	rec, ok, err := st.Get(constitution.TableConstitution, "")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, engine.Errorf(engine.KindInternal, "NoConstitution", "the service has no constitution")
	}
	src, err := decodeSource(rec)
	if err != nil {
		return nil, err
	}
	c, err := constitution.CompileModule(src)
	if err != nil {
		return nil, engine.Wrap(engine.KindInternal, "ConstitutionBroken", err, "the constitution in force does not compile")
	}
	compiled.Put(sha256.Sum256(rec), c)
	return c, nil
}

// ConstitutionSource is the constitution module in force.
func ConstitutionSource(st engine.StateReader) (string, error) {
	rec, ok, err := st.Get(constitution.TableConstitution, "")
	if err != nil {
		return "", err
	}
	if !ok {
		return "", engine.Errorf(engine.KindInternal, "NoConstitution", "the service has no constitution")
	}
	return decodeSource(rec)
}

func decodeSource(rec []byte) (string, error) {
	var src string
	if err := json.Unmarshal(rec, &src); err != nil {
		return "", fmt.Errorf("gov: constitution record: %w", err)
	}
	return src, nil
}

// constitutionDigestWrites adds the digest of any constitution write in ws.
func constitutionDigestWrites(ws engine.WriteSet) engine.WriteSet {
	var out engine.WriteSet
	for _, w := range ws {
		if w.Table != constitution.TableConstitution || w.Key != "" {
			continue
		}
		if w.Delete {
			out = append(out, engine.Write{Table: TableConstitutionDigest, Key: "", Delete: true})
			continue
		}
		d := sha256.Sum256(w.Value)
		out = append(out, engine.Write{Table: TableConstitutionDigest, Key: "", Value: d[:]})
	}
	return out
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

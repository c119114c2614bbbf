package audit

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/gavelhq/gavel/engine"
)

// WriteSetMismatch is the first table and key where a recorded write set
// and its re-execution differ. Its message is short (lengths and the bytes
// around the first difference); the full values are in its fields.
type WriteSetMismatch struct {
	Table, Key           string
	Recorded, Recomputed []byte // nil where that side wrote nothing (or deleted)
	What                 string // "differs", "only re-executed", "only recorded", "other key"
	OtherTable, OtherKey string // for "other key": what re-execution wrote instead
}

func (m *WriteSetMismatch) Error() string {
	switch m.What {
	case "only re-executed":
		return fmt.Sprintf("%s/%q written only by re-execution", m.Table, m.Key)
	case "only recorded":
		return fmt.Sprintf("%s/%q recorded but not re-executed", m.Table, m.Key)
	case "other key":
		return fmt.Sprintf("recorded %s/%q where re-execution wrote %s/%q", m.Table, m.Key, m.OtherTable, m.OtherKey)
	}
	return fmt.Sprintf("%s/%q: %s", m.Table, m.Key, ShortDiff(m.Recorded, m.Recomputed))
}

// diffContext is how many bytes ShortDiff shows on each side of the first
// difference.
const diffContext = 8

// ShortDiff says where two values first differ: their lengths and the
// bytes around the first difference, never the whole values.
func ShortDiff(recorded, recomputed []byte) string {
	i := 0
	for i < len(recorded) && i < len(recomputed) && recorded[i] == recomputed[i] {
		i++
	}
	window := func(b []byte) string {
		lo, hi := max(0, i-diffContext), min(len(b), i+diffContext)
		s := fmt.Sprintf("%x", b[lo:hi])
		if lo > 0 {
			s = "…" + s
		}
		if hi < len(b) {
			s += "…"
		}
		return s
	}
	return fmt.Sprintf("recorded %d bytes, re-executed %d bytes, first difference at byte %d: recorded %s, re-executed %s",
		len(recorded), len(recomputed), i, window(recorded), window(recomputed))
}

// diffWrites finds the first table/key where two canonical write sets
// differ.
func diffWrites(recorded, recomputed engine.WriteSet) error {
	recorded, recomputed = recorded.Canonical(), recomputed.Canonical()
	for i := 0; i < max(len(recorded), len(recomputed)); i++ {
		switch {
		case i >= len(recorded):
			return &WriteSetMismatch{Table: recomputed[i].Table, Key: recomputed[i].Key, Recomputed: recomputed[i].Value, What: "only re-executed"}
		case i >= len(recomputed):
			return &WriteSetMismatch{Table: recorded[i].Table, Key: recorded[i].Key, Recorded: recorded[i].Value, What: "only recorded"}
		}
		a, b := recorded[i], recomputed[i]
		if a.Table != b.Table || a.Key != b.Key {
			return &WriteSetMismatch{Table: a.Table, Key: a.Key, Recorded: a.Value, Recomputed: b.Value, What: "other key", OtherTable: b.Table, OtherKey: b.Key}
		}
		if a.Delete != b.Delete || !bytes.Equal(a.Value, b.Value) {
			return &WriteSetMismatch{Table: a.Table, Key: a.Key, Recorded: a.Value, Recomputed: b.Value, What: "differs"}
		}
	}
	return errors.New("no difference")
}

func publicKeyFromPEM(b []byte) (crypto.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("service certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("service certificate: %w", err)
	}
	return cert.PublicKey, nil
}

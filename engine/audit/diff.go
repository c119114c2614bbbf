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

// diffWrites names the first table/key where two canonical write sets differ.
func diffWrites(recorded, recomputed engine.WriteSet) string {
	recorded, recomputed = recorded.Canonical(), recomputed.Canonical()
	for i := 0; i < max(len(recorded), len(recomputed)); i++ {
		switch {
		case i >= len(recorded):
			return fmt.Sprintf("%s/%q written only by re-execution", recomputed[i].Table, recomputed[i].Key)
		case i >= len(recomputed):
			return fmt.Sprintf("%s/%q recorded but not re-executed", recorded[i].Table, recorded[i].Key)
		}
		a, b := recorded[i], recomputed[i]
		if a.Table != b.Table || a.Key != b.Key {
			return fmt.Sprintf("recorded %s/%q where re-execution wrote %s/%q", a.Table, a.Key, b.Table, b.Key)
		}
		if a.Delete != b.Delete || !bytes.Equal(a.Value, b.Value) {
			return fmt.Sprintf("%s/%q: recorded %x, re-executed %x", a.Table, a.Key, a.Value, b.Value)
		}
	}
	return "no difference"
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

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gavelhq/gavel/engine/issuer"
)

func init() {
	register("statement issuer", "make a test did:x509 issuer: key.pem, chain.pem, did.txt", runStatementIssuer)
}

func runStatementIssuer(args []string, out, errOut io.Writer) int {
	fs := newFlags("statement issuer", errOut)
	dir := fs.String("out", ".", "folder for key.pem, chain.pem and did.txt")
	alg := fs.String("alg", "ES256", "leaf key: ES256, ES384, ES512, PS256 or EdDSA")
	asJSON := fs.Bool("json", false, "print the DID and the files' paths as JSON")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(errOut, fs, "no arguments are taken")
	}
	iss, err := issuer.New(*alg, time.Now().Add(-time.Hour))
	if err != nil {
		return usageError(errOut, fs, "%v", err)
	}
	keyPEM, err := iss.LeafKeyPEM()
	if err != nil {
		return failf(errOut, "%v", err)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return failf(errOut, "%v", err)
	}
	for name, data := range map[string][]byte{"key.pem": keyPEM, "chain.pem": iss.ChainPEM(), "did.txt": []byte(iss.DID + "\n")} {
		mode := os.FileMode(0o644)
		if name == "key.pem" {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(*dir, name), data, mode); err != nil {
			return failf(errOut, "%v", err)
		}
	}
	if *asJSON {
		return printJSON(out, map[string]string{"did": iss.DID, "key": filepath.Join(*dir, "key.pem"), "chain": filepath.Join(*dir, "chain.pem")})
	}
	fmt.Fprintln(out, iss.DID)
	return exitOK
}

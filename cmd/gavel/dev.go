package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/gavelhq/gavel/engine/attest/devsnp"
)

func init() {
	register("dev snp-signer", "make a development SEV-SNP chain (ARK, ASK, VCEK) that signs real reports", runDevSNPSigner)
}

func runDevSNPSigner(args []string, out, errOut io.Writer) int {
	fs := newFlags("dev snp-signer", errOut)
	dir := fs.String("out", "", "folder for ark.pem, ask.pem, vcek.pem and vcek_privk.pem (created)")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if *dir == "" || len(pos) != 0 {
		return usageError(errOut, fs, "--out DIR is required and no arguments are taken")
	}
	s, err := devsnp.Create(*dir, time.Now())
	if err != nil {
		return failf(errOut, "%v", err)
	}
	fp := sha256.Sum256(s.ARK.Raw)
	summary := struct {
		ARK            string `json:"ark"`
		ASK            string `json:"ask"`
		VCEK           string `json:"vcek"`
		VCEKKey        string `json:"vcek_key"`
		ARKFingerprint string `json:"ark_sha256"`
		CPUID          string `json:"cpuid"`
		TCB            any    `json:"tcb"`
		NotAfter       string `json:"vcek_not_after"`
	}{
		ARK: filepath.Join(*dir, devsnp.ARKFile), ASK: filepath.Join(*dir, devsnp.ASKFile),
		VCEK: filepath.Join(*dir, devsnp.VCEKFile), VCEKKey: filepath.Join(*dir, devsnp.VCEKKeyFile),
		ARKFingerprint: hex.EncodeToString(fp[:]), CPUID: devsnp.CPUID, TCB: devsnp.TCBVersion,
		NotAfter: s.VCEK.NotAfter.UTC().Format(time.RFC3339),
	}
	if !*asJSON {
		tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
		for _, kv := range [][2]string{{"ark", summary.ARK}, {"ask", summary.ASK}, {"vcek", summary.VCEK}, {"vcek key", summary.VCEKKey},
			{"ark sha256", summary.ARKFingerprint}, {"cpuid", summary.CPUID}, {"vcek not after", summary.NotAfter}} {
			fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
		}
		tw.Flush()
		return exitOK
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(summary); err != nil {
		return failf(errOut, "%v", err)
	}
	return exitOK
}

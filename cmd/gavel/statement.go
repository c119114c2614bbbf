package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/didx509"
)

func init() {
	register("statement sign", "sign a payload as a COSE signed statement (to stdout)", runStatementSign)
	register("statement register", "register a signed statement; prints its txid once a signature covers it", runStatementRegister)
	register("receipt", "fetch the COSE receipt of a transaction (to stdout)", runReceipt)
}

func runStatementSign(args []string, out, errOut io.Writer) int {
	fs := newFlags("statement sign", errOut)
	key := fs.String("key", "", "PEM private key of the leaf certificate")
	chain := fs.String("chain", "", "PEM certificate chain, leaf first")
	issuer := fs.String("issuer", "", "did:x509 issuer that the chain satisfies")
	subject := fs.String("subject", "", "the statement's subject (CWT sub)")
	contentType := fs.String("content-type", "application/octet-stream", "the payload's content type")
	svn := fs.Int64("svn", -1, "the CWT claim svn (security version number) a join policy judges; none when negative")
	iatFlag := fs.String("iat", "", "the CWT iat: RFC 3339 or Unix seconds (default: now)")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if *key == "" || *chain == "" || *issuer == "" || *subject == "" || len(pos) != 1 {
		return usageError(errOut, fs, "--key, --chain, --issuer, --subject and one PAYLOAD file are required")
	}
	signer, err := loadSigner(*key)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	certs, err := loadCerts(*chain)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	payload, err := readInput(pos[0])
	if err != nil {
		return failf(errOut, "%v", err)
	}
	iat := time.Now()
	if *iatFlag != "" {
		if iat, err = parseIAT(*iatFlag); err != nil {
			return usageError(errOut, fs, "--iat: %v", err)
		}
	}
	var opts []cose.SignOption
	if *svn >= 0 {
		opts = append(opts, cose.WithClaim("svn", *svn))
	}
	// Refuse here what the service would refuse: a chain that does not
	// satisfy the issuer DID.
	if _, err := didx509.Resolve(*issuer, certs, iat); err != nil {
		return failf(errOut, "the chain does not satisfy %s: %v", *issuer, err)
	}
	st, err := cose.SignStatement(signer, certs, *issuer, *subject, *contentType, payload, iat, opts...)
	if err != nil {
		return failf(errOut, "sign: %v", err)
	}
	out.Write(st)
	return exitOK
}

func runStatementRegister(args []string, out, errOut io.Writer) int {
	fs := newFlags("statement register", errOut)
	url := fs.String("url", "http://127.0.0.1:8080", "the service's HTTP address")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for the operation to succeed")
	asJSON := fs.Bool("json", false, `print {"txid": …} instead of the txid alone`)
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(errOut, fs, "one STATEMENT file is required")
	}
	st, err := readInput(pos[0])
	if err != nil {
		return failf(errOut, "%v", err)
	}
	// scitt-ccf-ledger's registration: an operation, polled until the
	// entry's receipt can be had.
	tx, err := client.New(*url, client.WithHTTPClient(httpClient)).RegisterAndWait(context.Background(), st, *wait)
	var amb *client.AmbiguousError
	switch {
	case errors.As(err, &amb) && amb.Landed:
		// The answer was lost, the registration was not.
		fmt.Fprintf(errOut, "gavel: the service's answer was lost (%v); the statement is registered\n", amb.Cause)
	case errors.As(err, &amb):
		return failf(errOut, "not registered: the service's answer was lost (%v) and it holds no statement with this claims digest", amb.Cause)
	case err != nil:
		return failf(errOut, "registration refused: %v", err)
	}
	if *asJSON {
		b, _ := json.Marshal(map[string]string{"txid": tx})
		fmt.Fprintf(out, "%s\n", b)
		return exitOK
	}
	fmt.Fprintln(out, tx)
	return exitOK
}

func runReceipt(args []string, out, errOut io.Writer) int {
	fs := newFlags("receipt", errOut)
	url := fs.String("url", "http://127.0.0.1:8080", "the service's HTTP address")
	txid := fs.String("txid", "", "transaction id (view.seqno)")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for a pending signature")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if *txid == "" || len(pos) != 0 {
		return usageError(errOut, fs, "--txid is required")
	}
	if _, err := engine.ParseTxID(*txid); err != nil {
		return failf(errOut, "%v", err)
	}
	b, err := client.New(*url, client.WithHTTPClient(httpClient)).Receipt(context.Background(), *txid, *wait)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	out.Write(b)
	return exitOK
}

var httpClient = &http.Client{Timeout: 60 * time.Second}

// parseIAT reads --iat: RFC 3339, or Unix seconds.
func parseIAT(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor Unix seconds", s)
	}
	return time.Unix(n, 0), nil
}

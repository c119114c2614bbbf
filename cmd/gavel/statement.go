package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/didx509"
)

func init() {
	register("statement sign", "sign a payload as a COSE signed statement (to stdout)", runStatementSign)
	register("statement register", "register a signed statement; prints JSON with its txid", runStatementRegister)
	register("receipt", "fetch the COSE receipt of a transaction (to stdout)", runReceipt)
}

func runStatementSign(args []string, out, errOut io.Writer) int {
	fs := newFlags("statement sign", errOut)
	key := fs.String("key", "", "PEM private key of the leaf certificate")
	chain := fs.String("chain", "", "PEM certificate chain, leaf first")
	issuer := fs.String("issuer", "", "did:x509 issuer that the chain satisfies")
	subject := fs.String("subject", "", "the statement's subject (CWT sub)")
	contentType := fs.String("content-type", "application/octet-stream", "the payload's content type")
	fs.Usage = func() {
		fmt.Fprintln(errOut, "usage: gavel statement sign --key K --chain CHAIN.pem --issuer DID --subject S [--content-type T] PAYLOAD")
		fs.PrintDefaults()
	}
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
	// Refuse here what the service would refuse: a chain that does not
	// satisfy the issuer DID.
	if _, err := didx509.Resolve(*issuer, certs, time.Now()); err != nil {
		return failf(errOut, "the chain does not satisfy %s: %v", *issuer, err)
	}
	st, err := cose.SignStatement(signer, certs, *issuer, *subject, *contentType, payload, time.Now())
	if err != nil {
		return failf(errOut, "sign: %v", err)
	}
	out.Write(st)
	return exitOK
}

func runStatementRegister(args []string, out, errOut io.Writer) int {
	fs := newFlags("statement register", errOut)
	url := fs.String("url", "http://127.0.0.1:8080", "the service's HTTP address")
	fs.Usage = func() {
		fmt.Fprintln(errOut, "usage: gavel statement register --url U FILE")
		fs.PrintDefaults()
	}
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(errOut, fs, "one statement FILE is required")
	}
	st, err := readInput(pos[0])
	if err != nil {
		return failf(errOut, "%v", err)
	}
	resp, err := httpClient.Post(strings.TrimRight(*url, "/")+"/entries", "application/cose", bytes.NewReader(st))
	if err != nil {
		return failf(errOut, "%v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return failf(errOut, "%v", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return failf(errOut, "registration refused (%s): %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var res struct {
		TxID string `json:"txid"`
	}
	if err := json.Unmarshal(body, &res); err != nil || res.TxID == "" {
		return failf(errOut, "unexpected answer: %s", body)
	}
	fmt.Fprintf(out, "%s\n", bytes.TrimSpace(body))
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
	b, err := fetchCOSE(strings.TrimRight(*url, "/")+"/receipt?transaction_id="+*txid, *wait)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	out.Write(b)
	return exitOK
}

var httpClient = &http.Client{Timeout: 60 * time.Second}

// fetchCOSE GETs a COSE document, following 202 + Retry-After until wait.
func fetchCOSE(u string, wait time.Duration) ([]byte, error) {
	deadline := time.Now().Add(wait)
	for {
		resp, err := httpClient.Get(u)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			return body, nil
		case resp.StatusCode == http.StatusAccepted && time.Now().Before(deadline):
			time.Sleep(200 * time.Millisecond)
			continue
		}
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
}

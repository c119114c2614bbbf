package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/audit"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/receipt"
)

func init() {
	register("audit verify-receipt", "verify a COSE receipt against a service certificate", runVerifyReceipt)
	register("audit verify-statement", "verify a transparent statement and its receipts", runVerifyStatement)
	register("audit replay", "replay the whole ledger and verify every leaf, root and signature", runReplay)
}

func runVerifyReceipt(args []string, out, errOut io.Writer) int {
	fs := newFlags("audit verify-receipt", errOut)
	certPath := fs.String("service-cert", "", "the service certificate (PEM)")
	stPath := fs.String("statement", "", "the signed statement the receipt is for (its claims digest must match)")
	fs.Usage = func() {
		fmt.Fprintln(errOut, "usage: gavel audit verify-receipt --service-cert CERT RECEIPT [--statement FILE]")
		fs.PrintDefaults()
	}
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if *certPath == "" || len(pos) != 1 {
		return usageError(errOut, fs, "--service-cert and one RECEIPT file are required")
	}
	keys, err := loadServiceKeys(*certPath, "")
	if err != nil {
		return failf(errOut, "%v", err)
	}
	rcpt, err := readInput(pos[0])
	if err != nil {
		return failf(errOut, "%v", err)
	}
	var want *engine.Digest
	if *stPath != "" {
		st, err := readInput(*stPath)
		if err != nil {
			return failf(errOut, "%v", err)
		}
		cd, err := cose.ClaimsDigest(st)
		if err != nil {
			return failf(errOut, "not verified: statement: %v", err)
		}
		want = &cd
	}
	v, err := verifyReceipt(keys, rcpt, want)
	if err != nil {
		return failf(errOut, "not verified: %v", err)
	}
	return printJSON(out, map[string]any{"verified": true, "txid": v.TxID.String(), "root": hex.EncodeToString(v.Root[:])})
}

func runVerifyStatement(args []string, out, errOut io.Writer) int {
	fs := newFlags("audit verify-statement", errOut)
	certPath := fs.String("service-cert", "", "the service certificate (PEM)")
	paramsPath := fs.String("service-params", "", "service parameters JSON (a list of service certificates)")
	fs.Usage = func() {
		fmt.Fprintln(errOut, "usage: gavel audit verify-statement (--service-cert CERT | --service-params JSON) FILE")
		fs.PrintDefaults()
	}
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if (*certPath == "") == (*paramsPath == "") || len(pos) != 1 {
		return usageError(errOut, fs, "exactly one of --service-cert and --service-params, and one FILE, are required")
	}
	keys, err := loadServiceKeys(*certPath, *paramsPath)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	ts, err := readInput(pos[0])
	if err != nil {
		return failf(errOut, "%v", err)
	}
	res, err := receipt.VerifyTransparent(ts, keys, time.Now())
	if err != nil {
		return failf(errOut, "not verified: %v", err)
	}
	type verifiedReceipt struct {
		TxID     string    `json:"txid"`
		Root     string    `json:"root"`
		IssuedAt time.Time `json:"iat"`
	}
	summary := struct {
		Verified     bool              `json:"verified"`
		Issuer       string            `json:"issuer"`
		Subject      string            `json:"subject"`
		ClaimsDigest string            `json:"claims_digest"`
		Receipts     []verifiedReceipt `json:"receipts"`
	}{Verified: true, Issuer: res.Statement.Issuer, Subject: res.Statement.Subject, ClaimsDigest: hex.EncodeToString(res.ClaimsDigest[:])}
	for _, v := range res.Receipts {
		summary.Receipts = append(summary.Receipts, verifiedReceipt{TxID: v.TxID.String(), Root: hex.EncodeToString(v.Root[:]), IssuedAt: v.IssuedAt})
	}
	return printJSON(out, summary)
}

// verifyReceipt checks a receipt against the service key its kid names,
// and, when want is set, that its leaf commits to that claims digest.
func verifyReceipt(keys receipt.KeySet, rcpt []byte, want *engine.Digest) (*receipt.Verified, error) {
	parsed, err := receipt.Parse(rcpt)
	if err != nil {
		return nil, err
	}
	key, ok := keys.Lookup(parsed.KeyID)
	if !ok {
		return nil, engine.Errorf(engine.KindInvalid, receipt.CodeUnknownServiceKey, "receipt kid %q is not a key of this service", parsed.KeyID)
	}
	if want != nil {
		return receipt.VerifyWithClaimsDigest(rcpt, key, *want)
	}
	return receipt.Verify(rcpt, key)
}

func loadServiceKeys(certPath, paramsPath string) (receipt.KeySet, error) {
	path, parse := certPath, receipt.KeySetFromPEM
	if certPath == "" {
		path, parse = paramsPath, receipt.ParseServiceParameters
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return receipt.KeySet{}, err
	}
	return parse(b)
}

func runReplay(args []string, out, errOut io.Writer) int {
	fs := newFlags("audit replay", errOut)
	data := fs.String("data", "", "a stopped replica's data folder")
	natsURL := fs.String("nats", "", "a running service's NATS URL")
	creds := fs.String("creds", "", "NATS credentials (nkey seed or .creds file) for --nats")
	safety := constitution.DefaultSafetyNet()
	scriptSafetyFlags(fs, &safety)
	fs.Usage = func() {
		fmt.Fprintln(errOut, "usage: gavel audit replay (--data DIR | --nats URL --creds F)")
		fs.PrintDefaults()
	}
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if (*data == "") == (*natsURL == "") || len(pos) != 0 || (*natsURL != "" && *creds == "") {
		return usageError(errOut, fs, "give --data DIR, or --nats URL with --creds F")
	}
	if err := constitution.CheckSafetyNet(safety); err != nil {
		return usageError(errOut, fs, "%v", err)
	}
	ctx := context.Background()
	var nc *nats.Conn
	if *data != "" {
		if _, err := os.Stat(filepath.Join(*data, "endpoints.json")); err == nil {
			return failf(errOut, "%s belongs to a running replica (endpoints.json exists): stop it, or replay with --nats", *data)
		}
		if _, err := os.Stat(filepath.Join(*data, "nats")); err != nil {
			return failf(errOut, "%s has no ledger: %v", *data, err)
		}
		emb, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: filepath.Join(*data, "nats"), Listen: "127.0.0.1:0"})
		if err != nil {
			return failf(errOut, "open the ledger in %s: %v", *data, err)
		}
		defer emb.Shutdown()
		if nc, err = emb.ConnectReplica(); err != nil {
			return failf(errOut, "%v", err)
		}
	} else {
		opt, err := natslog.ConnectOptions(*creds)
		if err != nil {
			return failf(errOut, "%v", err)
		}
		if nc, err = nats.Connect(*natsURL, opt, nats.Name("gavel-audit")); err != nil {
			return failf(errOut, "connect %s: %v", *natsURL, err)
		}
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	reader := natslog.NewReader(js)
	last, err := reader.LastSequence(ctx)
	if err != nil {
		return failf(errOut, "read the ledger: %v", err)
	}
	r := audit.NewReplayer(verifyStatementAt)
	r.SetScriptLimits(safety)
	progress := newProgress(errOut, "replay", last)
	err = reader.Range(ctx, 1, func(seq uint64, subject string, data []byte) error {
		progress.set(seq)
		return r.Add(seq, subject, data)
	})
	progress.done()
	sum := r.Summary()
	var div *audit.Divergence
	if errors.As(err, &div) {
		printJSON(out, map[string]any{"verified": false, "first_bad_txid": div.TxID, "reason": div.Reason, "checked": sum})
		return failf(errOut, "not verified: %v", div)
	}
	if err != nil {
		return failf(errOut, "replay: %v", err)
	}
	if sum.Entries == 0 {
		return failf(errOut, "not verified: the ledger is empty")
	}
	if len(sum.Inconclusive) > 0 {
		// No divergence, but some entries a safety net decided: neither
		// verified nor refuted (the JSON field "inconclusive" lists them).
		printJSON(out, sum)
		fmt.Fprintf(errOut, "gavel: inconclusive: %d governance entries were decided by a script safety net (see \"inconclusive\")\n", len(sum.Inconclusive))
		return exitInconclusive
	}
	return printJSON(out, sum)
}

// verifyStatementAt re-runs a registration's stateless checks as of the
// entry's time.
func verifyStatementAt(raw []byte, f engine.Facts) (engine.Command, error) {
	return exec.VerifyStatement(raw, f.Time)
}

func printJSON(out io.Writer, v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fmt.Fprintf(out, "gavel: cannot render the result: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(out, "%s\n", b)
	return exitOK
}

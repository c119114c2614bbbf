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
	"strings"
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
	"github.com/gavelhq/gavel/engine/replica"
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
	fs.Bool("json", true, "print JSON (the only format of audit reports)")
	fs.Usage = func() {
		fmt.Fprint(errOut, `usage: gavel audit verify-receipt --service-cert CERT [--statement FILE] RECEIPT

Verifies a CCF COSE receipt offline. Prints entry_txid (the transaction the
receipt is for) and signature_txid (the signature entry whose signed root
its proof leads to).

example:
  gavel audit verify-receipt --service-cert gavel-data/service_cert.pem --statement st.cose receipt.cose

flags:
`)
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
	if receipt.IsSignatureReceipt(rcpt) {
		// A signature entry's receipt: its own signature over its root.
		if want != nil {
			return failf(errOut, "not verified: this is the receipt of a signature entry, which holds no statement")
		}
		v, err := verifySignatureReceipt(keys, rcpt)
		if err != nil {
			return failf(errOut, "not verified: %v", err)
		}
		return printJSON(out, map[string]any{"verified": true, "kind": "signature", "entry_txid": v.TxID.String(),
			"signature_txid": v.TxID.String(), "root": hex.EncodeToString(v.Root[:])})
	}
	v, err := verifyReceipt(keys, rcpt, want)
	if err != nil {
		return failf(errOut, "not verified: %v", err)
	}
	return printJSON(out, map[string]any{"verified": true, "kind": "inclusion", "entry_txid": entryTxID(v.Leaf.CommitEvidence),
		"signature_txid": v.TxID.String(), "root": hex.EncodeToString(v.Root[:])})
}

func runVerifyStatement(args []string, out, errOut io.Writer) int {
	fs := newFlags("audit verify-statement", errOut)
	certPath := fs.String("service-cert", "", "the service certificate (PEM)")
	paramsPath := fs.String("service-params", "", "service parameters JSON (a list of service certificates)")
	fs.Bool("json", true, "print JSON (the only format of audit reports)")
	fs.Usage = func() {
		fmt.Fprint(errOut, `usage: gavel audit verify-statement (--service-cert CERT | --service-params JSON) TRANSPARENT_STATEMENT

Verifies a transparent statement (a signed statement with its receipts in
header 394) offline: the statement's signature and did:x509 issuer, and each
receipt against the service's keys.

example:
  gavel audit verify-statement --service-cert gavel-data/service_cert.pem ts.cose

flags:
`)
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
		EntryTxID string `json:"entry_txid"`
		// TxID is the signature entry's; named as before for scripts.
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
		summary.Receipts = append(summary.Receipts, verifiedReceipt{EntryTxID: entryTxID(v.Leaf.CommitEvidence), TxID: v.TxID.String(), Root: hex.EncodeToString(v.Root[:]), IssuedAt: v.IssuedAt})
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

// verifySignatureReceipt checks a signature entry's receipt against the
// service key its kid names.
func verifySignatureReceipt(keys receipt.KeySet, rcpt []byte) (*receipt.Verified, error) {
	m, err := cose.DecodeSign1(rcpt)
	if err != nil {
		return nil, err
	}
	phdr, err := m.ProtectedHeader()
	if err != nil {
		return nil, err
	}
	kid, _, _ := phdr.Bytes(cose.LabelKID)
	key, ok := keys.Lookup(kid)
	if !ok {
		return nil, engine.Errorf(engine.KindInvalid, receipt.CodeUnknownServiceKey, "receipt kid %q is not a key of this service", kid)
	}
	return receipt.VerifySignatureReceipt(rcpt, key)
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
	creds := fs.String("creds", "", "NATS credentials for --nats: an nkey seed such as DATA/nats/auditor.nk (the auditor.json beside it sets the inbox prefix) or a .creds file")
	serviceCert := fs.String("service-cert", "", "the service certificate genesis must record (optional)")
	safety := constitution.DefaultSafetyNet()
	scriptSafetyFlags(fs, &safety)
	verbose := fs.Bool("verbose", false, "on a divergence, also print both full values of the differing key (hex)")
	fs.Bool("json", true, "print JSON (the only format of audit reports)")
	fs.Usage = func() {
		fmt.Fprint(errOut, `usage: gavel audit replay (--data DIR | --nats URL --creds F) [--service-cert F] [--verbose]

Replays the whole ledger from its first entry and prints a JSON report that
always has "verified" (true or false). A divergence names the first bad
txid and, for a write set, the table, the key and a short diff.

example:
  gavel audit replay --nats "$GAVEL_NATS" --creds gavel-data/nats/client.nk
  gavel audit replay --data gavel-data          # a stopped replica

flags:
`)
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
	// A read the credentials do not allow is never answered: the server's
	// permission violation ends the replay at once, and names itself.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	onDenied := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			cancel(fmt.Errorf("%w (replay with the auditor's credentials, DATA/nats/auditor.nk)", err))
		}
	})
	var nc *nats.Conn
	if *data != "" {
		if _, err := os.Stat(filepath.Join(*data, "nats")); err != nil {
			return replayFailed(out, errOut, "%s has no ledger: %v", *data, err)
		}
		// The folder's lock, not endpoints.json, says whether a replica
		// runs: a killed one leaves the file behind but not the lock.
		lock, err := replica.LockDir(*data, "gavel audit replay", false)
		if errors.Is(err, replica.ErrInUse) {
			return replayFailed(out, errOut, "%v: stop it, or replay with --nats", err)
		}
		if err != nil {
			return replayFailed(out, errOut, "%v", err)
		}
		defer lock.Release()
		emb, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: filepath.Join(*data, "nats"), Listen: "127.0.0.1:0"})
		if err != nil {
			return replayFailed(out, errOut, "open the ledger in %s: %v", *data, err)
		}
		defer emb.Shutdown()
		// As an auditor: reading is all a replay needs.
		if nc, err = emb.ConnectClient(natslog.UserAuditor); err != nil {
			return replayFailed(out, errOut, "%v", err)
		}
	} else {
		opt, err := natslog.ConnectOptions(*creds)
		if err != nil {
			return replayFailed(out, errOut, "%v", err)
		}
		if nc, err = nats.Connect(*natsURL, opt, nats.Name("gavel-audit"), onDenied); err != nil {
			return replayFailed(out, errOut, "connect %s: %v", *natsURL, err)
		}
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return replayFailed(out, errOut, "%v", err)
	}
	reader := natslog.NewReader(js)
	last, err := reader.LastSequence(ctx)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			err = cause
		}
		return replayFailed(out, errOut, "read the ledger: %v", err)
	}
	r := audit.NewReplayer(verifyStatementAt)
	if *serviceCert != "" {
		b, err := os.ReadFile(*serviceCert)
		if err != nil {
			return replayFailed(out, errOut, "%v", err)
		}
		if err := r.ExpectServiceCertificate(b); err != nil {
			return replayFailed(out, errOut, "%s: %v", *serviceCert, err)
		}
	}
	r.SetScriptLimits(safety)
	progress := newProgressMode(errOut, "replay", "entries", last, jsonFlagSet(fs))
	read := func(fn func(engine.LedgerMsg) error) error { return reader.Range(ctx, 1, fn) }
	err = r.AddAll(ctx, read, 0, func(m engine.LedgerMsg) { progress.set(m.Seq) })
	progress.done()
	sum := r.Summary()
	// Void entries are foreign writes, never applied: the history around
	// them still verifies, so they are findings on stderr, not a failure.
	for _, v := range sum.VoidEntries {
		fmt.Fprintf(errOut, "gavel: void entry at seqno %d (not an authenticated entry, not applied): %s\n", v.Seqno, v.Reason)
	}
	var div *audit.Divergence
	if errors.As(err, &div) {
		report := map[string]any{"verified": false, "first_bad_txid": div.TxID, "reason": div.Reason, "checked": sum}
		if m := div.Mismatch; m != nil {
			report["table"], report["key"] = m.Table, m.Key
			report["diff"] = audit.ShortDiff(m.Recorded, m.Recomputed)
			if *verbose {
				report["recorded"], report["recomputed"] = hex.EncodeToString(m.Recorded), hex.EncodeToString(m.Recomputed)
			}
		}
		printJSON(out, report)
		return failf(errOut, "not verified: %v", div)
	}
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			err = cause
		}
		return replayFailed(out, errOut, "replay: %v", err)
	}
	if sum.Entries == 0 {
		return replayFailed(out, errOut, "not verified: the ledger is empty")
	}
	if len(sum.Inconclusive) > 0 {
		// No divergence, but some entries a safety net decided: neither
		// verified nor refuted (the JSON field "inconclusive" lists them).
		printJSON(out, struct {
			Verified bool `json:"verified"`
			audit.Summary
		}{false, sum})
		fmt.Fprintf(errOut, "gavel: inconclusive: %d governance entries were decided by a script safety net (see \"inconclusive\")\n", len(sum.Inconclusive))
		return exitInconclusive
	}
	return printJSON(out, struct {
		Verified bool `json:"verified"`
		audit.Summary
	}{true, sum})
}

// replayFailed reports a replay that could not verify the ledger: the
// report on stdout still says "verified": false, the reason goes to stderr.
func replayFailed(out, errOut io.Writer, format string, args ...any) int {
	printJSON(out, map[string]any{"verified": false, "reason": fmt.Sprintf(format, args...)})
	return failf(errOut, format, args...)
}

// entryTxID is the transaction a receipt's leaf is for, read from its
// commit evidence "ce:<view>.<seqno>:<nonce>".
func entryTxID(ce string) string {
	rest, ok := strings.CutPrefix(ce, "ce:")
	if !ok {
		return ""
	}
	tx, _, _ := strings.Cut(rest, ":")
	return tx
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

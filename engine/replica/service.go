package replica

import (
	"context"
	"encoding/json"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/receipt"
	"github.com/gavelhq/gavel/engine/state"
	"github.com/gavelhq/gavel/handlers"
)

// registerStatement checks a signed statement statelessly (structure,
// did:x509 issuer, signature) on the caller's goroutine, then commits it.
func (r *Replica) registerStatement(ctx context.Context, raw []byte) (forwardAnswer, error) {
	// Verification is CPU-bound: one per core at a time. Waiting for the
	// commit is not, and holds no slot, so group commit sees every request.
	select {
	case r.verifySlots <- struct{}{}:
	case <-ctx.Done():
		return forwardAnswer{}, engine.Wrap(engine.KindUnavailable, "Timeout", ctx.Err(), "no verification slot before the deadline")
	}
	cmd, err := r.VerifyStatement(raw)
	<-r.verifySlots
	if err != nil {
		return forwardAnswer{}, err
	}
	out, err := r.submit(ctx, cmd)
	return answerOf(out, err)
}

// VerifyStatement is the stateless half of a registration.
func (r *Replica) VerifyStatement(raw []byte) (exec.RegisterStatement, error) {
	return exec.VerifyStatement(raw, r.cfg.Now())
}

// Receipt builds the receipt of a committed entry from the first signature
// that covers it, and verifies it against the service key before returning.
func (r *Replica) Receipt(ctx context.Context, tx engine.TxID) ([]byte, error) {
	st, done, err := r.reading()
	defer done()
	if err != nil {
		return nil, err
	}
	return r.receipt(st, tx)
}

func (r *Replica) receipt(st *state.Store, tx engine.TxID) ([]byte, error) {
	leaf, err := leafOf(st, tx)
	if err != nil {
		return nil, err
	}
	if leaf.Kind == engine.KindSignature {
		return r.signatureReceipt(st, tx)
	}
	sig, ok, err := st.SignatureCovering(tx.Seqno)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, engine.Errorf(engine.KindPending, "TransactionPendingSignature",
			"transaction %s is committed; its signature is not yet", tx)
	}
	path, err := st.InclusionPath(tx.Seqno, sig.Seqno)
	if err != nil {
		return nil, err
	}
	parts := receipt.Leaf{WriteSetDigest: leaf.WriteSetDigest, CommitEvidence: engine.CommitEvidence(tx, leaf.Nonce), ClaimsDigest: leaf.ClaimsDigest}
	rcpt, err := receipt.Build(sig.COSE, parts, path)
	if err != nil {
		return nil, err
	}
	// Never hand out a receipt that does not verify: its signature is the
	// signature entry's, checked once against the service key, and its
	// proof must lead to the root that signature signs.
	root, err := r.signedRoot(st, sig)
	if err != nil {
		return nil, err
	}
	parsed, err := receipt.Parse(rcpt)
	if err != nil || parsed.ProvenRoot() != root || parsed.TxID != (engine.TxID{View: sig.View, Seqno: sig.Seqno}) {
		return nil, engine.Errorf(engine.KindInternal, "ReceiptSelfCheckFailed", "receipt for %s does not lead to the root signed at %d.%d (%v)", tx, sig.View, sig.Seqno, err)
	}
	return rcpt, nil
}

// signatureReceipt is a signature entry's receipt: its own signature with
// the root it signs (receipt.BuildSignatureReceipt). No later signature is
// needed, so it is served as soon as the entry is committed: the cover
// search below would find only later signatures, and a quiet service
// makes none.
func (r *Replica) signatureReceipt(st *state.Store, tx engine.TxID) ([]byte, error) {
	sig, ok, err := st.SignatureCovering(tx.Seqno - 1) // the first at seqno ≥ tx.Seqno: itself
	if err != nil {
		return nil, err
	}
	if !ok || sig.Seqno != tx.Seqno {
		return nil, engine.Errorf(engine.KindInternal, "InternalError", "signature entry %s has no signature record", tx)
	}
	root, err := r.signedRoot(st, sig)
	if err != nil {
		return nil, err
	}
	return receipt.BuildSignatureReceipt(sig.COSE, root)
}

// signedRoot is the Merkle root a signature entry signs, its signature
// verified against the service key once and then remembered.
func (r *Replica) signedRoot(st *state.Store, sig state.SignatureRecord) (engine.Digest, error) {
	if root, ok := r.signedRoots.Get(sig.Seqno); ok {
		return root, nil
	}
	root, err := st.RootAt(sig.Seqno)
	if err != nil {
		return root, err
	}
	signed, err := receipt.VerifySignature(sig.COSE, root, r.identity.Cert.PublicKey)
	if err != nil {
		return root, engine.Wrap(engine.KindInternal, "ReceiptSelfCheckFailed", err, "signature %d.%d does not verify over the stored root", sig.View, sig.Seqno)
	}
	if signed != (engine.TxID{View: sig.View, Seqno: sig.Seqno}) {
		return root, engine.Errorf(engine.KindInternal, "ReceiptSelfCheckFailed", "signature at %d names %s", sig.Seqno, signed)
	}
	r.signedRoots.Put(sig.Seqno, root)
	return root, nil
}

// StatementByClaimsDigest finds a statement's latest registration.
func (r *Replica) StatementByClaimsDigest(ctx context.Context, d engine.Digest) (engine.TxID, bool, error) {
	seq, ok, err := r.store.StatementByClaimsDigest(d)
	if err != nil || !ok {
		return engine.TxID{}, false, err
	}
	rec, ok, err := r.store.Leaf(seq)
	if err != nil || !ok {
		return engine.TxID{}, false, err
	}
	return engine.TxID{View: rec.View, Seqno: seq}, true, nil
}

// TransparentStatement returns a registered statement with its receipt.
func (r *Replica) TransparentStatement(ctx context.Context, tx engine.TxID) ([]byte, error) {
	st, done, err := r.reading()
	defer done()
	if err != nil {
		return nil, err
	}
	leaf, err := leafOf(st, tx)
	if err != nil {
		return nil, err
	}
	if leaf.Kind != engine.KindStatement {
		return nil, engine.Errorf(engine.KindNotFound, "NotAStatement", "transaction %s is a %s entry, not a statement", tx, leaf.Kind)
	}
	rcpt, err := r.receipt(st, tx)
	if err != nil {
		return nil, err
	}
	e, err := r.log.Entry(ctx, tx.Seqno)
	if err != nil {
		return nil, err
	}
	return receipt.Embed(e.Input, rcpt)
}

// leafOf finds a committed entry's leaf record; a txid whose view does not
// match the entry at its seqno is unknown, as in CCF.
func leafOf(st *state.Store, tx engine.TxID) (state.LeafRecord, error) {
	rec, ok, err := st.Leaf(tx.Seqno)
	if err != nil {
		return rec, err
	}
	if !ok || rec.View != tx.View {
		return rec, engine.Errorf(engine.KindNotFound, "TransactionNotFound", "no committed transaction %s", tx)
	}
	if rec.Kind == engine.KindVoid {
		return rec, engine.Errorf(engine.KindNotFound, "TransactionVoid",
			"%s is a void entry, a message in the log that is not an authenticated entry (%s): it has no receipt", tx, rec.VoidReason)
	}
	return rec, nil
}

// Network describes the service, and whether it can write now: a failing
// signer, a stopped sequencer, a failed catch-up or a storage fault make
// writable false and name the cause.
func (r *Replica) Network(ctx context.Context) (handlers.NetworkInfo, error) {
	info := handlers.NetworkInfo{
		ServiceCertificate: string(r.identity.CertPEM),
		ServiceStatus:      "Open",
		CurrentView:        r.currentView(),
		PrimaryID:          r.PrimaryID(),
		ServiceData:        json.RawMessage("null"),
		Writable:           true,
	}
	if f := r.WriteFault(); f != nil {
		info.Writable = false
		info.WriteError = &handlers.WriteError{Code: f.Code, Message: f.Message, Since: f.Since.UTC()}
	}
	st, done, err := r.reading()
	defer done()
	if err != nil {
		return info, nil // the fault says why there is no position
	}
	m := st.Meta()
	if m.Voids > 0 {
		info.VoidEntries = &handlers.VoidEntries{Count: m.Voids, LastSeqno: m.LastVoid.Seqno, LastReason: m.LastVoid.Reason}
	}
	if m.Seqno > 0 {
		info.LastTxID = engine.TxID{View: m.View, Seqno: m.Seqno}.String()
		if g, ok, _ := st.Leaf(1); ok {
			info.CreateTxID = engine.TxID{View: g.View, Seqno: 1}.String()
		}
	}
	if m.LastSignature > 0 {
		if s, ok, _ := st.Leaf(m.LastSignature); ok {
			info.LastSignedTxID = engine.TxID{View: s.View, Seqno: m.LastSignature}.String()
		}
	}
	info.Cluster = r.clusterInfo(ctx)
	return info, nil
}

package replica

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/nodes"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/engine/state"
)

// viewChangeAttempts bounds how often a new primary tries to write its
// view-change entry: each refusal means the log moved (the old primary's
// last batch landed), and the next try starts from what it holds.
const viewChangeAttempts = 5

// viewChangeAppendWait bounds each attempt to append the view change.
const viewChangeAppendWait = 2 * time.Second

// lead sequences while this replica holds h: it returns once the lease is
// lost, handed over, or the sequencer stops (a newer view wrote).
func (r *Replica) lead(ctx context.Context, h held) {
	ro := r.roles
	st := r.Store()
	if err := state.CatchUp(ctx, st, r.log); err != nil {
		r.logger.Error("the new primary cannot catch up; giving the lease up", slog.Any("err", err))
		ro.lease.release(context.Background(), h.rev)
		return
	}
	// A long catch-up: renew before the view change, which also says
	// whether the lease is still ours to write it.
	if sent := time.Now(); h.until.Sub(sent) < ro.lease.cfg.TTL/2 {
		rctx, cancel := context.WithTimeout(ctx, ro.lease.cfg.Renew)
		rev, err := ro.lease.write(rctx, ro.self, h.rev)
		cancel()
		if err != nil {
			r.logger.Warn("the lease went before the view change", slog.Any("err", err))
			return
		}
		h.renewed(rev, sent, ro.lease.cfg.TTL)
	}
	meta := st.Meta()
	// The view is the lease's revision; a bucket younger than the ledger
	// (recreated) cannot send views back.
	view := max(h.view, meta.View+1)
	if meta.Seqno > 0 {
		if err := r.viewChange(ctx, st, view); err != nil {
			r.logger.Warn("view change refused; giving the lease up", slog.Uint64("view", view), slog.Any("err", err))
			ro.lease.release(context.Background(), h.rev)
			return
		}
	}
	// Before the first round (genesis included: a fresh cluster may have
	// elected the ledger's leader on another server): a JetStream API
	// request sent while the stream elects its leader goes unanswered
	// until its deadline.
	r.moveStreamLeader(ctx)
	seq := sequencer.New(r.cfg.Sequencer, view, st, r.seqLog(), r.signer, r.logger.With("component", "sequencer"))
	r.mu.Lock()
	r.seq = seq
	r.mu.Unlock()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- seq.Run(sctx) }()
	ro.primary.Store(true)
	r.logger.Info("primary", slog.Uint64("view", view), slog.Uint64("lease_revision", h.view), slog.Uint64("seqno", st.Meta().Seqno))
	sub, err := r.serveForwards()
	if err != nil {
		r.logger.Error("cannot take forwarded writes", slog.Any("err", err))
	}
	defer func() {
		ro.primary.Store(false)
		if sub != nil {
			sub.Unsubscribe()
		}
	}()
	if meta.Seqno == 0 {
		go r.writeGenesis(sctx)
	}
	renew := time.NewTicker(ro.lease.cfg.Renew)
	defer renew.Stop()
	for {
		select {
		case <-ctx.Done():
			// Closing is a crash as far as the lease goes: it runs out.
			stop()
			<-ran
			return
		case err := <-ran:
			ro.primary.Store(false)
			if errors.Is(err, sequencer.ErrRetired) {
				r.retiredHandover(ctx, h)
				return
			}
			r.logger.Warn("primary steps down", slog.Uint64("view", view), slog.Any("err", err))
			if errors.Is(err, sequencer.ErrFatal) {
				r.fault.set(CodeRestarting, "the sequencer stopped on unknown state; rebuilding it from the log", err, r.logger)
				if _, rerr := r.restart(ctx); rerr == nil {
					r.fault.p.Store(nil)
				}
			}
			if !errors.Is(err, sequencer.ErrNotPrimary) {
				ro.lease.release(context.Background(), h.rev)
			}
			return
		case <-renew.C:
			if ro.knobs != nil && ro.knobs.Freeze.Load() {
				continue
			}
			sent := time.Now()
			if sent.After(h.until) {
				r.logger.Warn("the lease ran out before a renewal; stepping down", slog.Uint64("view", view))
				r.stopLeading(stop, ran)
				return
			}
			rctx, cancel := context.WithTimeout(ctx, ro.lease.cfg.Renew)
			rev, err := ro.lease.write(rctx, ro.self, h.rev)
			cancel()
			switch {
			case err == nil:
				h.renewed(rev, sent, ro.lease.cfg.TTL)
			case errors.Is(err, ErrLeaseLost):
				r.logger.Warn("the lease is another replica's; stepping down", slog.Uint64("view", view))
				r.stopLeading(stop, ran)
				return
			default:
				r.logger.Warn("lease renewal", slog.Any("err", err))
			}
		case req := <-ro.steps:
			r.stopLeading(stop, ran)
			req.done <- r.handOver(ctx, h, req.successor)
			return
		}
	}
}

// handOver gives the lease to successor in one compare-and-swap and tells
// it, so that it need not wait for its next poll.
func (r *Replica) handOver(ctx context.Context, h held, successor string) error {
	ro := r.roles
	hctx, cancel := context.WithTimeout(ctx, ro.lease.cfg.TTL)
	defer cancel()
	if _, err := ro.lease.write(hctx, LeaseValue{NodeID: successor}, h.rev); err != nil {
		return err
	}
	ro.setHolder(successor)
	ro.conn.Publish(nudgePrefix+successor, nil)
	r.logger.Info("lease handed over", slog.String("successor", successor), slog.Uint64("lease_revision", h.rev))
	return nil
}

// retiredHandover ends the primary-ship of a replica whose node the
// ledger has just retired (its sequencer's last round held the
// retirement): the lease goes to a live Trusted successor, else it is
// released and every Trusted replica is told to campaign.
func (r *Replica) retiredHandover(ctx context.Context, h held) {
	ro := r.roles
	live, others, err := r.successors(ctx)
	if err != nil {
		r.logger.Error("retired: the service nodes cannot be read; releasing the lease", slog.Any("err", err))
	}
	if live != "" {
		if err := r.handOver(ctx, h, live); err == nil {
			r.logger.Info("retired: primary-ship handed to a Trusted replica", slog.String("successor", live))
			return
		} else {
			r.logger.Warn("retired: the handover failed; releasing the lease", slog.String("successor", live), slog.Any("err", err))
		}
	}
	ro.lease.release(context.Background(), h.rev)
	for _, id := range others {
		ro.conn.Publish(nudgePrefix+id, nil)
	}
	r.logger.Info("retired: the lease is released for the Trusted replicas to take", slog.Int("trusted", len(others)))
}

// successors are the Trusted service nodes other than this one, and among
// them a live one ("" if none is known): its server, as its join recorded
// it, holds a current replica of the ledger stream.
func (r *Replica) successors(ctx context.Context) (live string, others []string, err error) {
	svc, err := r.serviceNodes(ctx)
	if err != nil {
		return "", nil, err
	}
	current := map[string]bool{}
	if info, err := r.ledgerInfo(ctx); err == nil && info.Cluster != nil {
		current[info.Cluster.Leader] = info.Cluster.Leader != ""
		for _, p := range info.Cluster.Replicas {
			current[p.Name] = p.Current && !p.Offline
		}
	}
	for _, n := range svc {
		if n.rec.NodeID == r.node.ID || n.rec.Status != nodes.StatusTrusted {
			continue
		}
		others = append(others, n.rec.NodeID)
		if live == "" && n.data != nil && current[n.data.ServerName] {
			live = n.rec.NodeID
		}
	}
	return live, others, nil
}

// stopLeading stops the sequencer and waits for it: the round in flight
// lands or fails, queued requests are refused (and then forwarded).
func (r *Replica) stopLeading(stop context.CancelFunc, ran <-chan error) {
	r.roles.primary.Store(false)
	stop()
	<-ran
}

// viewChange appends the new view's first entry: a signature entry over
// the current root, with the log's expected last sequence set to what the
// state holds. Only one writer can win that sequence, so a stale primary's
// next batch is refused and it reads this entry's newer view.
func (r *Replica) viewChange(ctx context.Context, st *state.Store, view uint64) error {
	var err error
	for range viewChangeAttempts {
		meta := st.Meta()
		now := max(r.cfg.Now().UnixMilli(), meta.TimeMillis)
		tx := engine.TxID{View: view, Seqno: meta.Seqno + 1}
		var cose []byte
		if cose, err = r.signer.SignRoot(st.Tree().Root(), tx, time.UnixMilli(now)); err != nil {
			return err
		}
		e := &engine.Entry{Kind: engine.KindSignature, View: view, Seqno: tx.Seqno, TimeMillis: now, Nonce: nonce(),
			Writes: engine.WriteSet{{Table: engine.TableSignatures, Key: "", Value: cose}}}
		e.Seal()
		var data []byte
		if data, err = e.Encode(); err != nil {
			return err
		}
		// Bounded: a publish sent while the stream elects a new leader (its
		// old one died with the old primary) can go unanswered; the log
		// then says whether it landed, and the next attempt goes to the
		// new leader.
		actx, cancel := context.WithTimeout(ctx, viewChangeAppendWait)
		_, err = r.seqLog().AppendBatch(actx, []string{e.Subject()}, [][]byte{data}, meta.Seqno)
		cancel()
		if err == nil {
			return st.Apply([]*engine.Entry{e})
		}
		// Refused or in doubt: the log says which.
		if cerr := state.CatchUp(ctx, st, r.log); cerr != nil {
			return cerr
		}
		if rec, ok, _ := st.Leaf(tx.Seqno); ok && rec.Nonce == e.Nonce {
			return nil
		}
		if m := st.Meta(); m.View >= view {
			return sequencer.ErrNotPrimary
		}
	}
	return err
}

func nonce() engine.Digest {
	var n engine.Digest
	rand.Read(n[:])
	return n
}

// writeGenesis creates the service: the first primary of an empty ledger.
func (r *Replica) writeGenesis(ctx context.Context) {
	if err := r.genesis(ctx); err != nil && ctx.Err() == nil {
		r.logger.Error("genesis", slog.Any("err", err))
	}
	r.advanced()
}

// Bounds of moving the stream leader: each request, and the wait for the
// new leader.
const (
	leaderMoveRequest = 500 * time.Millisecond
	leaderMoveWait    = 2 * time.Second
)

// moveStreamLeader moves the ledger's stream leader to this primary's
// server, so that its appends take no extra hop, and waits (briefly) until
// the stream has a leader again. It is a preference: failing leaves the
// leader where it is.
func (r *Replica) moveStreamLeader(ctx context.Context) {
	ro := r.roles
	ctx, cancel := context.WithTimeout(ctx, leaderMoveWait)
	defer cancel()
	info, err := r.ledgerInfo(ctx)
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || info.Cluster.Leader == ro.self.Server {
		return
	}
	onServer := false
	for _, p := range info.Cluster.Replicas {
		onServer = onServer || p.Name == ro.self.Server
	}
	if !onServer {
		return
	}
	b, _ := json.Marshal(server.JSApiLeaderStepdownRequest{Placement: &server.Placement{Preferred: ro.self.Server}})
	rctx, rcancel := context.WithTimeout(ctx, leaderMoveRequest)
	msg, err := ro.conn.RequestWithContext(rctx, "$JS.API.STREAM.LEADER.STEPDOWN."+natslog.LedgerStream, b)
	rcancel()
	if err != nil {
		r.logger.Warn("ledger stream leader stays", slog.String("leader", info.Cluster.Leader), slog.Any("err", err))
		return
	}
	var resp server.JSApiStreamLeaderStepDownResponse
	if json.Unmarshal(msg.Data, &resp) != nil || resp.Error != nil {
		r.logger.Warn("ledger stream leader stays", slog.String("leader", info.Cluster.Leader), slog.Any("answer", string(msg.Data)))
		return
	}
	t0 := time.Now()
	for ctx.Err() == nil {
		if now, err := r.ledgerInfo(ctx); err == nil && now.Cluster != nil && now.Cluster.Leader != "" {
			r.logger.Info("ledger stream leader moved", slog.String("from", info.Cluster.Leader), slog.String("to", now.Cluster.Leader),
				slog.Duration("election", time.Since(t0)))
			return
		}
	}
	r.logger.Warn("the ledger stream has no leader after a stepdown", slog.Duration("waited", time.Since(t0)))
}

// ledgerInfo is the ledger stream's info, asked with a short deadline.
func (r *Replica) ledgerInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 25*time.Millisecond)
	defer cancel()
	stream, err := r.roles.js.Stream(ctx, natslog.LedgerStream)
	if err != nil {
		return nil, err
	}
	return stream.Info(ctx)
}

// StepDown hands the lease to successor, a Trusted service node, in one
// compare-and-swap once the sequencer has stopped (its round in flight
// resolved); the successor then writes its view change and moves the
// ledger's stream leader to its server. Only the primary steps down.
func (r *Replica) StepDown(ctx context.Context, successor string) error {
	ro := r.roles
	if ro == nil {
		return engine.Errorf(engine.KindConflict, "NotReplicated", "this is the only replica: there is no successor to hand over to")
	}
	if successor == r.node.ID {
		return engine.Errorf(engine.KindInvalid, "InvalidSuccessor", "the successor is this replica")
	}
	trusted, err := read(r, func(st *state.Store) (*engine.TrustedNodes, error) { return engine.LoadTrustedNodes(st) })
	if err != nil {
		return err
	}
	if !trusted.Trusts(successor) {
		return engine.Errorf(engine.KindInvalid, "InvalidSuccessor", "%s is not a Trusted service node", successor)
	}
	req := stepdownRequest{successor: successor, done: make(chan error, 1)}
	if !ro.primary.Load() {
		return engine.Errorf(engine.KindConflict, CodeNotPrimary, "this replica is not the primary (%s is)", r.PrimaryID()).Marked(errNotPrimary)
	}
	select {
	case ro.steps <- req:
	case <-ctx.Done():
		return engine.Wrap(engine.KindUnavailable, "Timeout", ctx.Err(), "the primary did not take the stepdown")
	}
	select {
	case err := <-req.done:
		if err != nil {
			return engine.Wrap(engine.KindUnavailable, "StepdownFailed", err, "the lease could not be handed to %s", successor)
		}
		return nil
	case <-ctx.Done():
		return engine.Wrap(engine.KindUnavailable, "Timeout", ctx.Err(), "no answer from the stepdown before the deadline")
	}
}

// HandOff hands primary-ship to a live Trusted successor before a planned
// stop (gavel serve on SIGTERM), so that writes pause for a handover, not
// for the lease to run out. A replica that is not the primary, or that
// finds no successor, does nothing.
func (r *Replica) HandOff(ctx context.Context) error {
	if r.roles == nil || !r.IsPrimary() {
		return nil
	}
	live, _, err := r.successors(ctx)
	if err != nil || live == "" {
		return err
	}
	return r.StepDown(ctx, live)
}

package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/engine/state"
)

// A replica on a shared NATS server (Config.NATS) has a role. It is a
// follower until it holds the leader lease: it tails the ledger with an
// ordered consumer and folds every entry into its state through the same
// fold as catch-up (state.Fold: authenticated, never executed), serves
// every read from that state and forwards writes to the primary. Holding
// the lease it is the primary: it catches up, writes a view-change entry
// fenced by the ledger's expected last sequence, and runs a sequencer in
// the lease's view until the lease or the fence says otherwise.

// roles is a replicated replica's role state.
type roles struct {
	lease  *lease
	conn   *nats.Conn           // the replica user's: lease, follower, forwarding
	js     jetstream.JetStream  // on conn
	self   LeaseValue           // this replica in the lease
	knobs  *LeaseKnobs          // nil in production
	steps  chan stepdownRequest // the primary's loop takes handovers here
	nudge  chan struct{}        // a handover to this replica: look at the lease now
	holder atomic.Pointer[string]
	// moved is closed and replaced whenever the holder changes.
	moved atomic.Pointer[chan struct{}]

	primary atomic.Bool // sequencing now
	// forwards are the forwarded writes being run here; Close answers
	// them all before it closes the connection they came on.
	forwards sync.WaitGroup
	// flights are the forwarded statements being run here, by claims
	// digest (localForwarded).
	flights sync.Map

	// applied is closed and replaced whenever the state advances.
	mu      sync.Mutex
	applied chan struct{}
}

// stepdownRequest asks the primary's loop to hand the lease to successor.
type stepdownRequest struct {
	successor string
	done      chan error
}

// Codes of the replicated write path.
const (
	CodeNotPrimary      = "NotPrimary"
	CodeNoPrimary       = "NoPrimary"
	CodeAppliedTooEarly = "AppliedTxidNotReached"
)

// errNotPrimary marks writes refused by a replica that does not sequence.
var errNotPrimary = errors.New("replica: not the primary")

func notPrimary() error {
	return engine.Errorf(engine.KindUnavailable, CodeNotPrimary, "this replica is not the primary").Marked(errNotPrimary)
}

// openReplicated is Open of one replica of several, on a server it shares
// (Config.NATS) or its own clustered one: streams and lease bucket on it,
// the state caught up, the role loop (and, clustered, the replication
// controller) started. It returns once the state holds the genesis entry
// (written by whichever replica first took the lease of an empty ledger).
func (r *Replica) openReplicated(ctx context.Context) (_ *Replica, err error) {
	cfg := r.cfg
	host, err := r.sharedHost() // external.go
	if err != nil {
		return nil, err
	}
	if err := host.waitReady(ctx); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		conn **nats.Conn
		user natslog.User
	}{{&r.conn, natslog.UserSequencer}, {&r.feedsConn, natslog.UserFeeds}, {&r.handlerConn, natslog.UserHandler}} {
		if *c.conn, err = host.connect(c.user, nats.ErrorHandler(r.asyncError(c.user))); err != nil {
			return nil, fmt.Errorf("connect as %s: %w", c.user, err)
		}
	}
	ro := &roles{steps: make(chan stepdownRequest), nudge: make(chan struct{}, 1), applied: make(chan struct{}), knobs: cfg.Lease.Knobs}
	r.roles = ro
	if ro.conn, err = host.connect(natslog.UserReplica, nats.ErrorHandler(r.asyncError(natslog.UserReplica))); err != nil {
		return nil, fmt.Errorf("connect as %s: %w", natslog.UserReplica, err)
	}
	ro.self = LeaseValue{NodeID: r.node.ID, Server: host.serverName(ro.conn)}
	if ro.js, err = jetstream.New(ro.conn); err != nil {
		return nil, err
	}
	if _, err := ro.conn.Subscribe(nudgePrefix+r.node.ID, func(*nats.Msg) {
		select {
		case ro.nudge <- struct{}{}:
		default:
		}
	}); err != nil {
		return nil, err
	}
	js, err := jetstream.New(r.conn)
	if err != nil {
		return nil, err
	}
	replicas := max(cfg.StreamReplicas, 1)
	if r.cluster != nil {
		// The controller raises the replicas; a restart keeps what they are.
		if err := r.cluster.ensureStreams(ctx, js); err != nil {
			return nil, fmt.Errorf("streams: %w", err)
		}
		n, err := streamReplicas(ctx, js, leaseStream)
		switch {
		case err != nil:
			return nil, fmt.Errorf("lease bucket: %w", err)
		case n > 0:
			ro.lease, err = openExistingLease(ctx, ro.js, cfg.Lease)
		default:
			ro.lease, err = openPlacedLease(ctx, ro.js, 1, streamTags, cfg.Lease)
		}
		if err != nil {
			return nil, err
		}
	} else {
		if err := natslog.EnsureStreams(ctx, js, replicas); err != nil {
			return nil, fmt.Errorf("streams: %w", err)
		}
		if ro.lease, err = openLease(ctx, ro.js, replicas, cfg.Lease); err != nil {
			return nil, err
		}
	}
	if r.log, err = NewLedgerLog(r.conn, js, r.node.Signer()); err != nil {
		return nil, err
	}
	if r.store, err = openState(cfg.DataDir); err != nil {
		return nil, err
	}
	r.store.SetLogger(r.logger.With("component", "state"))
	if err := state.CatchUp(ctx, r.store, r.log); err != nil {
		return nil, fmt.Errorf("catch up with the log: %w", err)
	}
	if err := r.openNetmap(); err != nil {
		return nil, err
	}
	if r.signer, err = newRootSigner(r.identity); err != nil {
		return nil, err
	}
	if r.embedded != nil { // an external cluster's disks are its operator's
		r.watch = newStorageWatch(r.embedded.Server(), r.logger.With("component", "storage"))
	}
	// Until it first leads, the replica's sequencer never runs: writes are
	// forwarded (r.submit refuses them while it is not the primary).
	r.seq = sequencer.New(cfg.Sequencer, r.store.Meta().View+1, r.store, r.seqLog(), r.signer, r.logger.With("component", "sequencer"))
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	if r.watch != nil {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.watch.run(runCtx)
		}()
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.runRoles(runCtx)
	}()
	if err := r.waitApplied(ctx, 1); err != nil {
		return nil, fmt.Errorf("no genesis entry: %w", err)
	}
	if err := r.checkIdentity(); err != nil {
		return nil, err
	}
	if err := r.startNetmap(runCtx); err != nil {
		return nil, err
	}
	if r.cluster != nil {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.runCluster(runCtx)
		}()
	}
	r.logger.Info("replica open", slog.Uint64("seqno", r.Store().Meta().Seqno), slog.Bool("primary", r.IsPrimary()))
	return r, nil
}

// CopyServiceIdentity copies the service identity files (the service key
// and certificate, the network-map key and certificate) from one data
// folder to another, for a replica of the same service. The node key is
// each replica's own.
func CopyServiceIdentity(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	for _, f := range []string{ServiceCertFile, serviceKeyFile, MapCertFile, mapKeyFile} {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(to, f), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// runRoles alternates between following and leading until ctx ends.
func (r *Replica) runRoles(ctx context.Context) {
	ro := r.roles
	for ctx.Err() == nil {
		fctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.follow(fctx)
		}()
		h, ok := r.campaign(ctx)
		stop()
		<-done
		if !ok {
			return
		}
		r.lead(ctx, h)
		ro.primary.Store(false)
	}
}

// follow tails the ledger from the state's last seqno and folds what
// arrives, until ctx ends; it starts over after any failure.
func (r *Replica) follow(ctx context.Context) {
	wait := restartMin
	for ctx.Err() == nil {
		from := r.appliedSeqno()
		err := r.tail(ctx)
		if ctx.Err() != nil {
			return
		}
		if r.appliedSeqno() > from {
			wait = restartMin // it followed for a while: a fresh failure, not a repeated one
		}
		r.logger.Warn("following the ledger", slog.Any("err", err))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, restartMax)
	}
}

// appliedSeqno is the last seqno the state holds (0 while it is not open).
func (r *Replica) appliedSeqno() uint64 {
	if st := r.Store(); st != nil {
		return st.Meta().Seqno
	}
	return 0
}

// followStall is how long a follower waits on a quiet consumer while the
// ledger holds entries it has not delivered, before starting over.
const followStall = 500 * time.Millisecond

// followHeartbeat is the follower consumer's heartbeat: two missed ones
// and the library recreates the consumer, so it bounds how long a
// follower (and the writes waiting to read their own entry through it)
// stalls when its consumer's server gives up its stream replica (the
// library refuses less than 500 ms).
const followHeartbeat = 500 * time.Millisecond

// followResets bounds the ordered consumer's own attempts to recreate
// itself before the follower starts over.
const followResets = 3

// followPull is how many entries the follower's consumer asks for at once.
const followPull = 1000

func (r *Replica) tail(ctx context.Context) error {
	st, done, err := r.reading()
	if err != nil {
		return err
	}
	defer done()
	fold, err := state.NewFold(ctx, st, r.log)
	if err != nil {
		return err
	}
	next := st.Meta().Seqno + 1
	// A bounded number of resets: the library's default retries forever
	// inside Next, deaf to ctx (a stream that moved, a server removed),
	// where this loop would rather start over with its own backoff.
	cons, err := r.roles.js.OrderedConsumer(ctx, natslog.LedgerStream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: next, MaxResetAttempts: followResets,
	})
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(followPull), jetstream.PullHeartbeat(followHeartbeat))
	if err != nil {
		return err
	}
	defer it.Stop()
	// Stop also ends a reset in progress (which retries inside Next, deaf
	// to ctx), so neither Close nor the stall watch waits on one.
	tctx, stopTail := context.WithCancelCause(ctx)
	defer stopTail(nil)
	defer context.AfterFunc(tctx, it.Stop)()
	var delivered atomic.Uint64
	delivered.Store(next - 1)
	go r.watchTail(tctx, &delivered, stopTail)
	for {
		msg, err := nextOrQuiet(tctx, it, fold.Pending() > 0)
		if errors.Is(err, errTailQuiet) {
			// Delivered entries wait for a consumer's "nothing pending"
			// that may never come (a count from before a restart): fold
			// them once the tail is quiet.
			if err := fold.Flush(); err != nil {
				return err
			}
			r.advanced()
			continue
		}
		if err != nil {
			if cause := context.Cause(tctx); ctx.Err() == nil && cause != nil {
				return cause
			}
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		if meta.Sequence.Stream != next {
			return fmt.Errorf("ledger entry %d arrived where %d was due", meta.Sequence.Stream, next)
		}
		h := msg.Headers()
		if err := fold.Add(engine.LedgerMsg{Seq: next, Subject: msg.Subject(), Data: msg.Data(),
			Node: h.Get(engine.HeaderNode), Auth: h.Get(engine.HeaderAuth)}); err != nil {
			return err
		}
		next++
		delivered.Store(next - 1)
		if meta.NumPending == 0 || fold.Pending() == 0 {
			if err := fold.Flush(); err != nil {
				return err
			}
			r.advanced()
		}
	}
}

// followFlushAfter is how long a follower holding delivered entries waits
// for more before it folds them.
const followFlushAfter = 20 * time.Millisecond

// errTailQuiet: nothing arrived within followFlushAfter.
var errTailQuiet = errors.New("no ledger entry within the flush wait")

// nextOrQuiet is the tail's next message; with holding, it gives up after
// followFlushAfter with errTailQuiet (the iterator stays usable).
func nextOrQuiet(ctx context.Context, it jetstream.MessagesContext, holding bool) (jetstream.Msg, error) {
	if !holding {
		return it.Next(jetstream.NextContext(ctx))
	}
	wctx, cancel := context.WithTimeout(ctx, followFlushAfter)
	defer cancel()
	msg, err := it.Next(jetstream.NextContext(wctx))
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		return nil, errTailQuiet
	}
	return msg, err
}

// watchTail ends a tail (stop) whose consumer went quiet for followStall
// while the ledger holds entries past what it delivered: its server left
// the cluster or its stream moved, and a new consumer is quicker than the
// library's own resets.
func (r *Replica) watchTail(ctx context.Context, delivered *atomic.Uint64, stop context.CancelCauseFunc) {
	tick := time.NewTicker(followStall)
	defer tick.Stop()
	last := delivered.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d := delivered.Load()
		if d != last {
			last = d
			continue
		}
		if info, err := r.ledgerInfo(ctx); err == nil && info.State.LastSeq > d {
			stop(fmt.Errorf("the ledger holds entries up to %d, but its consumer delivered none past %d for %s", info.State.LastSeq, d, followStall))
			return
		}
	}
}

// advanced wakes whoever waits for the state to reach a seqno.
func (r *Replica) advanced() {
	ro := r.roles
	ro.mu.Lock()
	close(ro.applied)
	ro.applied = make(chan struct{})
	ro.mu.Unlock()
}

// appliedPoll bounds a wait on the primary, whose sequencer applies
// without waking anyone.
const appliedPoll = 5 * time.Millisecond

// waitApplied waits until the state holds seqno.
func (r *Replica) waitApplied(ctx context.Context, seqno uint64) error {
	for {
		st := r.Store()
		if st != nil && st.Meta().Seqno >= seqno {
			return nil
		}
		var wake <-chan struct{}
		if ro := r.roles; ro != nil {
			ro.mu.Lock()
			wake = ro.applied
			ro.mu.Unlock()
		}
		t := time.NewTimer(appliedPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// MaxAppliedWait is WaitApplied's default bound.
const MaxAppliedWait = 5 * time.Second

// WaitApplied waits (at most Config.AppliedWait, or until ctx ends) until
// this replica has applied tx's seqno, for a client that asks to read its
// own write (?min_txid=). It fails with a typed Unavailable error.
func (r *Replica) WaitApplied(ctx context.Context, tx engine.TxID) error {
	bound := r.cfg.AppliedWait
	if bound <= 0 {
		bound = MaxAppliedWait
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	if err := r.waitApplied(ctx, tx.Seqno); err != nil {
		st := r.Store()
		var have uint64
		if st != nil {
			have = st.Meta().Seqno
		}
		return engine.Wrap(engine.KindUnavailable, CodeAppliedTooEarly, err,
			"this replica has applied up to seqno %d, not yet %s; retry", have, tx)
	}
	return nil
}

// currentView is the view this replica sequences in, or as a follower
// the view of the last entry it applied.
func (r *Replica) currentView() uint64 {
	if r.IsPrimary() {
		return r.Sequencer().View()
	}
	if st := r.Store(); st != nil {
		return st.Meta().View
	}
	return 0
}

// IsPrimary reports whether this replica sequences now: it holds the lease
// (the only replica always does), no restart is under way, and its
// sequencer has not stopped (it stops when a newer view wrote). It is the
// one predicate that gates the primary's own work (the flag day, the
// feeds).
func (r *Replica) IsPrimary() bool {
	if r.roles != nil && !r.roles.primary.Load() {
		return false
	}
	seq := r.Sequencer()
	return r.fault.p.Load() == nil && seq != nil && !seq.Stopped()
}

// PrimaryID is the node id of the primary as this replica last saw the
// lease ("" while nobody holds it).
func (r *Replica) PrimaryID() string {
	if r.roles == nil {
		return r.node.ID
	}
	if p := r.roles.holder.Load(); p != nil {
		return *p
	}
	return ""
}

func (ro *roles) setHolder(id string) {
	if p := ro.holder.Load(); p == nil || *p != id {
		ro.holder.Store(&id)
		next := make(chan struct{})
		if old := ro.moved.Swap(&next); old != nil {
			close(*old)
		}
	}
}

// holderMoved is closed once the holder changes from what it is now.
func (ro *roles) holderMoved() <-chan struct{} {
	for {
		if p := ro.moved.Load(); p != nil {
			return *p
		}
		c := make(chan struct{})
		ro.moved.CompareAndSwap(nil, &c)
	}
}

// eligible says whether this replica may lead: a Trusted service node of
// the ledger (retired nodes are not Trusted), or anyone while the ledger
// is empty, so that the first to take the lease writes genesis.
func (r *Replica) eligible() bool {
	st, done, err := r.reading()
	defer done()
	if err != nil {
		return false
	}
	if st.Meta().Seqno == 0 {
		return true
	}
	// One record, not the whole table: this runs at every lease poll.
	v, ok, err := st.Get(engine.TableNodes, r.node.ID)
	return err == nil && ok && engine.IsTrustedServiceNode(r.node.ID, v)
}

// campaign waits until this replica holds the lease: it takes a free one
// with Create, and adopts one that names it (handed over, or its own from
// before a restart) with a compare-and-swap, whose revision is its view.
func (r *Replica) campaign(ctx context.Context) (held, bool) {
	ro := r.roles
	tick := time.NewTicker(ro.lease.cfg.Poll)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, ro.lease.cfg.TTL)
		v, rev, ok, err := ro.lease.read(rctx)
		cancel()
		if err == nil {
			if !ok {
				v.NodeID = "" // nobody holds it: an election
			}
			ro.setHolder(v.NodeID)
		}
		if err == nil && r.eligible() {
			sent := time.Now()
			var got uint64
			var werr error = ErrLeaseLost
			switch {
			case !ok:
				got, werr = ro.lease.take(ctx, ro.self)
			case v.NodeID == ro.self.NodeID:
				got, werr = ro.lease.write(ctx, ro.self, rev)
			}
			if werr == nil {
				h := held{view: got}
				h.renewed(got, sent, ro.lease.cfg.TTL)
				ro.setHolder(ro.self.NodeID)
				return h, true
			}
			if !errors.Is(werr, ErrLeaseLost) && ctx.Err() == nil {
				r.logger.Warn("lease", slog.Any("err", werr))
			}
		} else if err != nil && ctx.Err() == nil {
			r.logger.Warn("lease read", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return held{}, false
		case <-tick.C:
		case <-ro.nudge:
		}
	}
}

// nudgePrefix is where a primary that handed its lease over tells the
// successor (its node id appended), which need not wait for its next poll.
const nudgePrefix = "gavel.replica.lease."

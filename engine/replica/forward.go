package replica

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/handlers"
)

// Writes reach whichever replica a client talks to. The primary runs them;
// a follower forwards the signed request as received to the primary over
// NATS (gavel.replica.forward.<node id>), which verifies and commits it as
// if it had received it, and answers once committed. The follower answers
// its client once it has applied that entry itself, so a client reads its
// own write from the replica it wrote through.

// forwardPrefix is the subject of the primary's forwarded writes, with its
// node id appended.
const forwardPrefix = "gavel.replica.forward."

// forwardTimeout bounds a forwarded write at the primary.
const forwardTimeout = 30 * time.Second

// forwardRetry is the pause before a forwarded write is sent again (the
// primary is changing).
const forwardRetry = 5 * time.Millisecond

// Forwarded operations.
const (
	opStatement = "statement"
	opGov       = "gov"
	opJoin      = "join"
	opDelete    = "delete"
	opPublish   = "publish"
	opAck       = "ack"
)

// forwardRequest is a write as a follower forwards it. Requests and
// answers travel as CBOR: a signed request rides as a byte string, not
// base64 in JSON (which cost a follower ~80 µs a registration).
type forwardRequest struct {
	Op         string `json:"op"`
	Type       string `json:"type,omitempty"` // governance message type
	ProposalID string `json:"proposal_id,omitempty"`
	MemberID   string `json:"member_id,omitempty"`
	NodeID     string `json:"node_id,omitempty"` // opDelete
	Body       []byte `json:"body,omitempty"`
	// After is set when an earlier attempt is in doubt (its primary lost
	// the lease before answering): a statement the ledger holds past this
	// seqno is that attempt's, and is answered instead of written again.
	// The other writes are idempotent and simply run again.
	After uint64 `json:"after,omitempty"`
}

// forwardAnswer is the primary's answer: the write's answer and its entry
// (zero when it wrote none), or its typed error. NotPrimary says the
// replica asked was not the primary: ask the lease's holder again.
type forwardAnswer struct {
	Body       []byte      `json:"body,omitempty"`
	TxID       engine.TxID `json:"txid"`
	Error      *wireError  `json:"error,omitempty"`
	NotPrimary bool        `json:"not_primary,omitempty"`
}

// wireError is an engine.Error across the wire (its cause stays behind).
type wireError struct {
	Kind    engine.Kind          `json:"kind"`
	Code    string               `json:"code"`
	Message string               `json:"message"`
	Details []engine.ErrorDetail `json:"details,omitempty"`
}

func answerOf(out sequencer.Outcome, err error) (forwardAnswer, error) {
	return forwardAnswer{Body: out.Result, TxID: out.TxID}, err
}

// RegisterStatement checks a signed statement and commits it (see
// registerStatement), through the primary when this replica follows.
func (r *Replica) RegisterStatement(ctx context.Context, raw []byte) ([]byte, error) {
	a, err := r.write(ctx, forwardRequest{Op: opStatement, Body: raw})
	return bodyOf(a, err)
}

// SubmitGov verifies a member's signed request (type typ) against the
// current members, then commits it. The route's proposal id, and member
// id, must match the envelope (CCF's codes when they do not).
func (r *Replica) SubmitGov(ctx context.Context, typ govreq.MsgType, proposalID, memberID string, raw []byte) (handlers.GovAnswer, error) {
	a, err := r.write(ctx, forwardRequest{Op: opGov, Type: string(typ), ProposalID: proposalID, MemberID: memberID, Body: raw})
	if err != nil {
		return handlers.GovAnswer{}, err
	}
	return handlers.GovAnswer{Body: a.Body, TxID: a.TxID}, nil
}

// JoinNode verifies a node's signed join request, then commits it (a new
// node becomes Pending) or answers its poll; a Trusted node's answer
// carries its service-endorsed certificate.
func (r *Replica) JoinNode(ctx context.Context, raw []byte) ([]byte, error) {
	return bodyOf(r.write(ctx, forwardRequest{Op: opJoin, Body: raw}))
}

// DeleteNode deletes a retired node whose retirement a signature covers.
func (r *Replica) DeleteNode(ctx context.Context, id string) error {
	_, err := r.write(ctx, forwardRequest{Op: opDelete, NodeID: id})
	return err
}

// PublishNodeInfo verifies a signed NodeInfo against the node's recorded
// key and the service's limits, then commits it.
func (r *Replica) PublishNodeInfo(ctx context.Context, raw []byte) ([]byte, error) {
	return bodyOf(r.write(ctx, forwardRequest{Op: opPublish, Body: raw}))
}

// AckParameters verifies a node's acceptance, then commits it.
func (r *Replica) AckParameters(ctx context.Context, raw []byte) ([]byte, error) {
	return bodyOf(r.write(ctx, forwardRequest{Op: opAck, Body: raw}))
}

func bodyOf(a forwardAnswer, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	return a.Body, nil
}

// write runs req here on the primary (and on the only replica), else
// forwards it; a primary that stepped down while req waited forwards it
// too, as its sequencer never ran it.
func (r *Replica) write(ctx context.Context, req forwardRequest) (forwardAnswer, error) {
	if r.IsPrimary() {
		a, err := r.local(ctx, req)
		if !r.steppedDown(err) {
			return a, err
		}
	}
	return r.forward(ctx, req)
}

// steppedDown says whether err is the refusal of a primary that is
// stepping down (a newer view wrote, or its sequencer stopped): the write
// was not run, and the next primary should have it.
func (r *Replica) steppedDown(err error) bool {
	return err != nil && r.roles != nil &&
		(errors.Is(err, errNotPrimary) || errors.Is(err, sequencer.ErrNotPrimary) || errors.Is(err, sequencer.ErrStopped))
}

// local runs a write on this replica.
func (r *Replica) local(ctx context.Context, req forwardRequest) (forwardAnswer, error) {
	switch req.Op {
	case opStatement:
		if req.After > 0 {
			if a, ok, err := r.registeredAfter(ctx, req.Body, req.After); ok || err != nil {
				return a, err
			}
		}
		return r.registerStatement(ctx, req.Body)
	case opGov:
		a, err := r.submitGov(ctx, govreq.MsgType(req.Type), req.ProposalID, req.MemberID, req.Body)
		return forwardAnswer{Body: a.Body, TxID: a.TxID}, err
	case opJoin:
		return r.joinNode(ctx, req.Body)
	case opDelete:
		return r.deleteNode(ctx, req.NodeID)
	case opPublish:
		return r.publishNodeInfo(ctx, req.Body)
	case opAck:
		return r.ackParameters(ctx, req.Body)
	}
	return forwardAnswer{}, engine.Errorf(engine.KindInvalid, "UnknownOperation", "no forwarded operation %q", req.Op)
}

// registeredAfter finds a statement registered past seqno after.
func (r *Replica) registeredAfter(ctx context.Context, raw []byte, after uint64) (forwardAnswer, bool, error) {
	d, err := cose.ClaimsDigest(raw)
	if err != nil {
		return forwardAnswer{}, false, err
	}
	tx, ok, err := r.StatementByClaimsDigest(ctx, d)
	if err != nil || !ok || tx.Seqno <= after {
		return forwardAnswer{}, false, err
	}
	b, err := json.Marshal(exec.RegistrationResult{TxID: tx.String()})
	return forwardAnswer{Body: b, TxID: tx}, true, err
}

// forward sends req to the primary until one answers it (or ctx ends),
// then waits until this replica has applied the entry it wrote. An
// attempt whose primary loses the lease before answering is in doubt: the
// next one asks the new primary to look for it first (After).
func (r *Replica) forward(ctx context.Context, req forwardRequest) (forwardAnswer, error) {
	var sentAt uint64
	if st := r.Store(); st != nil {
		sentAt = st.Meta().Seqno
	}
	b, err := engine.CBOR.Marshal(req)
	if err != nil {
		return forwardAnswer{}, err
	}
	for {
		if r.IsPrimary() {
			// This replica took the lease meanwhile.
			a, err := r.local(ctx, req)
			if !r.steppedDown(err) {
				return a, err
			}
		} else if holder := r.PrimaryID(); holder != "" && holder != r.node.ID {
			msg, err := r.ask(ctx, holder, b)
			if errors.Is(err, errHolderChanged) {
				if req.After == 0 {
					req.After = max(sentAt, 1)
					if b, err = engine.CBOR.Marshal(req); err != nil {
						return forwardAnswer{}, err
					}
				}
				continue
			}
			if err == nil {
				var a forwardAnswer
				if err := engine.CBORDecode.Unmarshal(msg.Data, &a); err != nil {
					return a, engine.Wrap(engine.KindInternal, "BadForwardAnswer", err, "the primary's answer does not decode")
				}
				if !a.NotPrimary {
					return r.answered(ctx, a)
				}
			} else if !errors.Is(err, nats.ErrNoResponders) {
				if ctx.Err() != nil {
					return forwardAnswer{}, engine.Wrap(engine.KindUnavailable, "Timeout", ctx.Err(), "no answer from the primary before the deadline; the request may still commit")
				}
				r.logger.Warn("forwarding a write", slog.String("primary", holder), slog.Any("err", err))
			}
		}
		select {
		case <-ctx.Done():
			return forwardAnswer{}, engine.Wrap(engine.KindUnavailable, CodeNoPrimary, ctx.Err(), "no primary took the write before the deadline")
		case <-time.After(forwardRetry):
		}
	}
}

// errHolderChanged ends a forwarded attempt whose primary lost the lease.
var errHolderChanged = errors.New("replica: the primary changed before it answered")

// ask sends one forwarded write to holder and waits for its answer, until
// ctx ends or the lease names another holder.
func (r *Replica) ask(ctx context.Context, holder string, b []byte) (*nats.Msg, error) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	moved := r.roles.holderMoved()
	if r.PrimaryID() != holder {
		return nil, errHolderChanged
	}
	go func() {
		select {
		case <-actx.Done():
		case <-moved:
			cancel(errHolderChanged)
		}
	}()
	msg, err := r.roles.conn.RequestWithContext(actx, forwardPrefix+holder, b)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(actx), errHolderChanged) {
		return nil, errHolderChanged
	}
	return msg, err
}

// answered turns the primary's answer into this replica's, once its state
// holds the entry.
func (r *Replica) answered(ctx context.Context, a forwardAnswer) (forwardAnswer, error) {
	if e := a.Error; e != nil {
		return a, &engine.Error{Kind: e.Kind, Code: e.Code, Message: e.Message, Details: e.Details}
	}
	if a.TxID.Seqno > 0 {
		if err := r.WaitApplied(ctx, a.TxID); err != nil {
			// Committed, but this replica lags: the answer stands.
			r.logger.Warn("answering a forwarded write before applying it", slog.String("txid", a.TxID.String()), slog.Any("err", err))
		}
	}
	return a, nil
}

// serveForwards takes forwarded writes while this replica is the primary.
func (r *Replica) serveForwards() (*nats.Subscription, error) {
	return r.roles.conn.Subscribe(forwardPrefix+r.node.ID, func(m *nats.Msg) {
		r.roles.forwards.Add(1)
		go func() {
			defer r.roles.forwards.Done()
			r.serveForward(m)
		}()
	})
}

func (r *Replica) serveForward(m *nats.Msg) {
	var req forwardRequest
	var a forwardAnswer
	var err error
	if jerr := engine.CBORDecode.Unmarshal(m.Data, &req); jerr != nil {
		err = engine.Wrap(engine.KindInvalid, "MalformedForward", jerr, "forwarded write does not decode")
	} else if !r.IsPrimary() {
		a.NotPrimary = true
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
		a, err = r.localForwarded(ctx, req)
		cancel()
		a.NotPrimary = r.steppedDown(err)
	}
	if err != nil && !a.NotPrimary {
		e := engine.AsError(err)
		a = forwardAnswer{Error: &wireError{Kind: e.Kind, Code: e.Code, Message: e.Message, Details: e.Details}}
	}
	if k := r.roles.knobs; k != nil && k.DropAnswers.Load() {
		return
	}
	b, _ := engine.CBOR.Marshal(a)
	if err := m.Respond(b); err != nil {
		r.logger.Warn("answering a forwarded write", slog.Any("err", err))
	}
}

// flight is one forwarded statement being run at the primary.
type flight struct {
	done chan struct{}
	a    forwardAnswer
	err  error
}

// localForwarded runs a forwarded write here. A forwarded statement is run
// once at a time: a follower that took a stale lease read for a change of
// primary sends it again (After) while the first attempt may still be
// queued here, where registeredAfter cannot see it yet; the second
// attempt waits for the first and takes its answer.
func (r *Replica) localForwarded(ctx context.Context, req forwardRequest) (forwardAnswer, error) {
	if req.Op != opStatement {
		return r.local(ctx, req)
	}
	d, err := cose.ClaimsDigest(req.Body)
	if err != nil {
		return r.local(ctx, req) // refused there, with the same error
	}
	f := &flight{done: make(chan struct{})}
	if running, busy := r.roles.flights.LoadOrStore(d, f); busy {
		prior := running.(*flight)
		select {
		case <-prior.done:
		case <-ctx.Done():
			return forwardAnswer{}, engine.Wrap(engine.KindUnavailable, "Timeout", ctx.Err(), "an earlier attempt of this statement is still running")
		}
		if prior.err == nil || !r.steppedDown(prior.err) {
			return prior.a, prior.err
		}
		// The earlier attempt was not run: this one may be.
		return r.localForwarded(ctx, req)
	}
	defer func() {
		r.roles.flights.Delete(d)
		close(f.done)
	}()
	f.a, f.err = r.local(ctx, req)
	return f.a, f.err
}

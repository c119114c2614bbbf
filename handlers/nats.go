package handlers

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/nodes"
)

// Subjects served over NATS request/reply, with the same bodies and answers
// as their HTTP routes.
const (
	SubjectStatement     = "gavel.submit.statement"
	SubjectGovProposal   = "gavel.submit.gov.proposal"
	SubjectGovBallot     = "gavel.submit.gov.ballot"
	SubjectGovWithdrawal = "gavel.submit.gov.withdrawal"
	queueGroup           = "gavel-replicas"
	// StatusHeader carries the HTTP status of a NATS reply.
	StatusHeader = "Gavel-Status"
)

// NATSConfig bounds the NATS intake: how much may wait ahead of the
// sequencer's own pushback, and for how long.
type NATSConfig struct {
	// InFlight is how many requests are served at once.
	InFlight int
	// MaxQueued is how many requests may wait for a slot; one more is
	// answered 503 Busy at once. The sequencer's queue size is the natural
	// value: more waiting here could only be refused there.
	MaxQueued int
	// MaxHeldBytes bounds the bytes of requests received and not yet
	// answered (waiting or in flight); also the subscriptions' pending
	// byte limit. At least twice the largest request.
	MaxHeldBytes int64
	// MaxWait is how long a request may wait for a slot. One that waited
	// longer is answered 503 RequestExpired and not committed: its client
	// has most likely given up.
	MaxWait time.Duration
	// HasInterest, when set, says whether anyone still listens on a reply
	// subject; a request whose requester has gone is dropped (and counted)
	// before it is committed. The embedded server answers it cheaply.
	HasInterest func(subject string) bool
	// Now is the clock MaxWait is measured with; time.Now by default.
	Now func() time.Time
}

// Intake defaults (see NATSConfig). DefaultInFlight is enough for full
// atomic batches, few enough to bound memory.
const (
	DefaultInFlight     = 4096
	DefaultMaxHeldBytes = 256 << 20
	DefaultMaxWait      = 5 * time.Second
)

// DefaultNATSConfig sizes the intake for a sequencer queue of queueSize
// and the request size limits.
func DefaultNATSConfig(queueSize int, limits Limits) NATSConfig {
	return NATSConfig{
		InFlight:     DefaultInFlight,
		MaxQueued:    max(queueSize, 1),
		MaxHeldBytes: max(DefaultMaxHeldBytes, 2*max(limits.MaxStatementBytes, limits.MaxGovBytes)),
		MaxWait:      DefaultMaxWait,
	}
}

// NATSStats counts the requests the intake did not serve.
type NATSStats struct {
	// RepliesRefused: requests whose reply subject lies outside the
	// inboxes of the kinds that may send them (or that had none): dropped
	// unanswered, never executed.
	RepliesRefused uint64 `json:"replies_refused"`
	// Busy: answered 503 because the intake was full.
	Busy uint64 `json:"busy"`
	// Expired: answered 503 after waiting longer than MaxWait.
	Expired uint64 `json:"expired"`
	// Abandoned: dropped because nobody listened on the reply any more.
	Abandoned uint64 `json:"abandoned"`
	// SlowConsumerDropped: dropped by the client library because the
	// subscription's pending limits were hit (a backstop; the intake
	// answers Busy first).
	SlowConsumerDropped uint64 `json:"slow_consumer_dropped"`
}

// replyKinds are the client kinds allowed to send each subject: an answer
// goes only into one of their inboxes (the handler's NATS user may publish
// nowhere else either).
var replyKinds = map[string][]natslog.User{
	SubjectStatement:     {natslog.UserMember, natslog.UserNode},
	SubjectGovProposal:   {natslog.UserMember},
	SubjectGovBallot:     {natslog.UserMember},
	SubjectGovWithdrawal: {natslog.UserMember},
	SubjectNodeJoin:      {natslog.UserNode},
	SubjectNodeInfo:      {natslog.UserNode},
	SubjectNodeAck:       {natslog.UserNode},
}

// ReplyAllowed says whether a request on subject may be answered on reply:
// reply must lie strictly inside the inbox prefix of a kind that may send
// subject, and be a plain subject (no wildcards or spaces).
func ReplyAllowed(subject, reply string) bool {
	if reply == "" || strings.ContainsAny(reply, "*> \t\r\n") {
		return false
	}
	for _, k := range replyKinds[subject] {
		rest, ok := strings.CutPrefix(reply, k.InboxPrefix()+".")
		if ok && rest != "" && !strings.HasPrefix(rest, ".") && !strings.HasSuffix(rest, ".") && !strings.Contains(rest, "..") {
			return true
		}
	}
	return false
}

// NATS serves the gavel.submit.* subjects.
type NATS struct {
	svc    Service
	cfg    NATSConfig
	logger *slog.Logger
	// timeout bounds one request's call into the service.
	timeout time.Duration

	queueMu sync.RWMutex // admit sends under R, Stop closes under W
	closed  bool
	queue   chan job      // waiting for a slot
	slots   chan struct{} // in flight
	held    atomic.Int64  // bytes received and not yet answered
	subs    []*nats.Subscription
	wg      sync.WaitGroup // the dispatcher and the requests in flight
	stop    sync.Once

	refused, busy, expired, abandoned atomic.Uint64
	lastRefusalLog                    atomic.Int64 // unix nanos
}

// job is one admitted request and when it arrived.
type job struct {
	m       *nats.Msg
	call    func(context.Context, []byte) ([]byte, error)
	arrived time.Time
}

// refusalLogEvery rate-limits the log of refused reply subjects.
const refusalLogEvery = time.Second

// ServeNATS subscribes the submit subjects on nc, the handler user's
// connection (in a queue group, so replicas share the load). Admitted
// requests wait in a bounded queue and run in their own goroutines, at
// most cfg.InFlight at once.
func ServeNATS(nc *nats.Conn, svc Service, limits Limits, cfg NATSConfig, logger *slog.Logger) (*NATS, error) {
	d := DefaultNATSConfig(1, limits)
	if cfg.InFlight <= 0 {
		cfg.InFlight = d.InFlight
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = d.MaxQueued
	}
	if cfg.MaxHeldBytes <= 0 {
		cfg.MaxHeldBytes = d.MaxHeldBytes
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = d.MaxWait
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &NATS{svc: svc, cfg: cfg, logger: logger, timeout: 30 * time.Second,
		queue: make(chan job, cfg.MaxQueued), slots: make(chan struct{}, cfg.InFlight)}
	routes := map[string]func(context.Context, []byte) ([]byte, error){
		SubjectStatement: svc.RegisterStatement,
		SubjectGovProposal: func(ctx context.Context, b []byte) ([]byte, error) {
			res, err := svc.SubmitGov(ctx, govreq.MsgProposal, "", "", b)
			return res.Body, err
		},
		SubjectGovBallot: func(ctx context.Context, b []byte) ([]byte, error) {
			res, err := svc.SubmitGov(ctx, govreq.MsgBallot, "", "", b)
			return res.Body, err
		},
		SubjectGovWithdrawal: func(ctx context.Context, b []byte) ([]byte, error) {
			res, err := svc.SubmitGov(ctx, govreq.MsgWithdrawal, "", "", b)
			return res.Body, err
		},
		SubjectNodeJoin: svc.JoinNode,
	}
	if nm, ok := svc.(NetworkMap); ok {
		maps.Copy(routes, netmapSubjects(nm))
	}
	h.wg.Add(1)
	go h.dispatch()
	for subject, call := range routes {
		limit := limits.MaxGovBytes
		switch subject {
		case SubjectStatement:
			limit = limits.MaxStatementBytes
		case SubjectNodeJoin:
			limit = nodes.MaxJoinBytes
		}
		sub, err := nc.QueueSubscribe(subject, queueGroup, h.admit(limit, call))
		if err != nil {
			h.Stop()
			return nil, err
		}
		// The callback never blocks, so little waits here: the limits are a
		// backstop (bytes bound the memory; the count leaves room for a
		// burst ahead of the callback) whose drops are counted.
		if err := sub.SetPendingLimits(max(cfg.MaxQueued+cfg.InFlight, 1<<16), int(cfg.MaxHeldBytes)); err != nil {
			h.Stop()
			return nil, err
		}
		h.subs = append(h.subs, sub)
	}
	// Once the server has every subscription, a request sent after
	// ServeNATS returns finds its responder.
	if err := nc.Flush(); err != nil {
		h.Stop()
		return nil, err
	}
	return h, nil
}

// Stats reports what the intake refused or dropped so far.
func (h *NATS) Stats() NATSStats {
	s := NATSStats{RepliesRefused: h.refused.Load(), Busy: h.busy.Load(), Expired: h.expired.Load(), Abandoned: h.abandoned.Load()}
	for _, sub := range h.subs {
		if n, err := sub.Dropped(); err == nil {
			s.SlowConsumerDropped += uint64(n)
		}
	}
	return s
}

// Stop unsubscribes, answers what still waits and waits for the requests
// in flight.
func (h *NATS) Stop() {
	h.stop.Do(func() {
		for _, s := range h.subs {
			closed := s.StatusChanged(nats.SubscriptionClosed)
			if s.Drain() == nil {
				select {
				case <-closed:
				case <-time.After(h.timeout):
				}
			}
		}
		h.queueMu.Lock()
		h.closed = true
		close(h.queue)
		h.queueMu.Unlock()
		h.wg.Wait()
	})
}

// admit runs on the subscription's delivery goroutine and never blocks:
// it drops requests that cannot be answered properly, answers the cheap
// refusals, and queues the rest or answers Busy.
func (h *NATS) admit(limit int64, call func(context.Context, []byte) ([]byte, error)) nats.MsgHandler {
	return func(m *nats.Msg) {
		if !ReplyAllowed(m.Subject, m.Reply) {
			h.refuseReply(m)
			return
		}
		if len(m.Data) > int(limit) {
			h.reply(m, 0, nil, errTooLarge(len(m.Data), limit))
			return
		}
		if len(m.Data) == 0 {
			h.reply(m, 0, nil, errEmpty())
			return
		}
		size := int64(len(m.Data))
		if h.held.Add(size) > h.cfg.MaxHeldBytes {
			h.held.Add(-size)
			h.busy.Add(1)
			h.answerBusy(m, errIntakeFull())
			return
		}
		h.queueMu.RLock()
		queued := false
		if !h.closed {
			select {
			case h.queue <- job{m: m, call: call, arrived: h.cfg.Now()}:
				queued = true
			default:
			}
		}
		h.queueMu.RUnlock()
		if !queued {
			h.held.Add(-size)
			h.busy.Add(1)
			h.answerBusy(m, errIntakeFull())
		}
	}
}

// dispatch starts the queued requests as slots free up, each on an idle
// worker or, when none is idle, on a new one. Workers live on (at most
// InFlight of them): a verification on a fresh goroutine grows its stack
// first, which cost ~10 µs a request.
func (h *NATS) dispatch() {
	defer h.wg.Done()
	work := make(chan job)
	defer close(work) // idle workers return
	for {
		// The slot first: what waits, waits in the queue, where it counts.
		h.slots <- struct{}{}
		j, ok := <-h.queue
		if !ok {
			return
		}
		select {
		case work <- j:
		default:
			h.wg.Add(1)
			go h.worker(j, work)
		}
	}
}

// worker serves j, then every job handed to it until work is closed.
func (h *NATS) worker(j job, work <-chan job) {
	defer h.wg.Done()
	for ok := true; ok; j, ok = <-work {
		h.serve(j)
		h.held.Add(-int64(len(j.m.Data)))
		<-h.slots
	}
}

// serve runs one request unless its requester is likely gone.
func (h *NATS) serve(j job) {
	if waited := h.cfg.Now().Sub(j.arrived); waited > h.cfg.MaxWait {
		h.expired.Add(1)
		h.answerBusy(j.m, errExpired(waited, h.cfg.MaxWait))
		return
	}
	if h.cfg.HasInterest != nil && !h.cfg.HasInterest(j.m.Reply) {
		h.abandoned.Add(1)
		h.logger.Debug("nats request abandoned by its requester", slog.String("subject", j.m.Subject))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	defer cancel()
	res, err := j.call(ctx, j.m.Data)
	status := 200
	if j.m.Subject == SubjectStatement {
		status = 201
	}
	h.reply(j.m, status, res, err)
}

// refuseReply counts and logs (at most once a second) a request whose
// reply subject is not a requester's inbox: answering it would publish
// wherever the sender chose, e.g. into the ledger.
func (h *NATS) refuseReply(m *nats.Msg) {
	n := h.refused.Add(1)
	now := time.Now().UnixNano()
	last := h.lastRefusalLog.Load()
	if now-last >= int64(refusalLogEvery) && h.lastRefusalLog.CompareAndSwap(last, now) {
		h.logger.Warn("nats request dropped: its reply subject is not an inbox of a kind that may send it",
			slog.String("subject", m.Subject), slog.String("reply", truncate(m.Reply, 128)), slog.Uint64("dropped_total", n))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// answerBusy answers an intake refusal without the error log that
// errorBody gives every 5xx: a flood must not flood the log.
func (h *NATS) answerBusy(m *nats.Msg, err error) {
	e := engine.AsError(err)
	body, _ := json.Marshal(ErrorBody{Error: ErrorDetail{Code: e.Code, Message: e.Message}})
	h.send(m, Status(e), body)
}

func (h *NATS) reply(m *nats.Msg, status int, body []byte, err error) {
	if err != nil {
		status, body = errorBody(err, h.logger)
	}
	h.send(m, status, body)
}

func (h *NATS) send(m *nats.Msg, status int, body []byte) {
	out := nats.NewMsg(m.Reply)
	out.Header.Set(StatusHeader, strconv.Itoa(status))
	out.Data = body
	if err := m.RespondMsg(out); err != nil {
		h.logger.Debug("reply lost", slog.Any("err", err))
	}
}

func errIntakeFull() error {
	return engine.Errorf(engine.KindUnavailable, "Busy", "too many requests are waiting; retry")
}

func errExpired(waited, limit time.Duration) error {
	return engine.Errorf(engine.KindUnavailable, "RequestExpired", "the request waited %s, longer than %s, and was not executed; retry", waited.Round(time.Millisecond), limit)
}

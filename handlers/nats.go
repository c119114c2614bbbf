package handlers

import (
	"context"
	"log/slog"
	"maps"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine/govreq"
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

// NATS serves the gavel.submit.* subjects.
type NATS struct {
	svc     Service
	limits  Limits
	logger  *slog.Logger
	timeout time.Duration
	sem     chan struct{}
	subs    []*nats.Subscription
}

// ServeNATS subscribes the submit subjects on nc (in a queue group, so
// replicas share the load). Each request runs in its own goroutine, at most
// inFlight at once: enough to fill a group commit, bounded for memory.
func ServeNATS(nc *nats.Conn, svc Service, limits Limits, inFlight int, logger *slog.Logger) (*NATS, error) {
	h := &NATS{svc: svc, limits: limits, logger: logger, timeout: 30 * time.Second, sem: make(chan struct{}, max(inFlight, 1))}
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
	}
	if nm, ok := svc.(NetworkMap); ok {
		maps.Copy(routes, netmapSubjects(nm))
	}
	for subject, call := range routes {
		limit := limits.MaxGovBytes
		if subject == SubjectStatement {
			limit = limits.MaxStatementBytes
		}
		sub, err := nc.QueueSubscribe(subject, queueGroup, h.serve(limit, call))
		if err != nil {
			h.Stop()
			return nil, err
		}
		// Deep pending limits: bursts wait here rather than being dropped.
		if err := sub.SetPendingLimits(1<<20, 1<<30); err != nil {
			h.Stop()
			return nil, err
		}
		h.subs = append(h.subs, sub)
	}
	return h, nil
}

// Stop unsubscribes; requests in flight finish.
func (h *NATS) Stop() {
	for _, s := range h.subs {
		s.Drain()
	}
}

// serve answers one subject: size checks, then call, in a goroutine.
func (h *NATS) serve(limit int64, call func(context.Context, []byte) ([]byte, error)) nats.MsgHandler {
	return func(m *nats.Msg) {
		h.sem <- struct{}{}
		go func() {
			defer func() { <-h.sem }()
			if len(m.Data) > int(limit) {
				h.reply(m, 0, nil, errTooLarge(len(m.Data), limit))
				return
			}
			if len(m.Data) == 0 {
				h.reply(m, 0, nil, errEmpty())
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
			defer cancel()
			res, err := call(ctx, m.Data)
			status := 200
			if m.Subject == SubjectStatement {
				status = 201
			}
			h.reply(m, status, res, err)
		}()
	}
}

func (h *NATS) reply(m *nats.Msg, status int, body []byte, err error) {
	if m.Reply == "" {
		return
	}
	if err != nil {
		status, body = errorBody(err, h.logger)
	}
	out := nats.NewMsg(m.Reply)
	out.Header.Set(StatusHeader, strconv.Itoa(status))
	out.Data = body
	if err := m.RespondMsg(out); err != nil {
		h.logger.Debug("reply lost", slog.Any("err", err))
	}
}

package handlers

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Subjects served over NATS request/reply, with the same bodies and answers
// as their HTTP routes.
const (
	SubjectStatement = "gavel.submit.statement"
	queueGroup       = "gavel-replicas"
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
	sub, err := nc.QueueSubscribe(SubjectStatement, queueGroup, h.onStatement)
	if err != nil {
		return nil, err
	}
	// Deep pending limits: bursts wait here rather than being dropped.
	if err := sub.SetPendingLimits(1<<20, 1<<30); err != nil {
		return nil, err
	}
	h.subs = append(h.subs, sub)
	return h, nil
}

// Stop unsubscribes; requests in flight finish.
func (h *NATS) Stop() {
	for _, s := range h.subs {
		s.Drain()
	}
}

func (h *NATS) onStatement(m *nats.Msg) {
	h.sem <- struct{}{}
	go func() {
		defer func() { <-h.sem }()
		if len(m.Data) > int(h.limits.MaxStatementBytes) {
			h.reply(m, 0, nil, errTooLarge(len(m.Data), h.limits.MaxStatementBytes))
			return
		}
		if len(m.Data) == 0 {
			h.reply(m, 0, nil, errEmpty())
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
		defer cancel()
		res, err := h.svc.RegisterStatement(ctx, m.Data)
		h.reply(m, 201, res, err)
	}()
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

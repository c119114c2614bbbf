// Package client owns gavel's Go client: what members, statement issuers
// and (later) nodes embed to talk to a gavel service over HTTP. Requests
// and answers are typed (CCF's governance API, api-version 2024-07-01, and
// scitt-ccf-ledger's registration), and every refusal comes back as an
// *engine.Error with the service's code, its Kind recovered from the HTTP
// status. The CLI, the tests and the benchmarks use it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/handlers"
	"github.com/gavelhq/gavel/projections"
)

// The answer types, as the service defines them.
type (
	Proposal     = gov.Proposal
	StateDigest  = gov.StateDigest
	Member       = projections.Member
	ServiceInfo  = projections.ServiceInfo
	JSApp        = projections.JSApp
	JoinPolicies = projections.JoinPolicies
	NetworkInfo  = handlers.NetworkInfo
	Operation    = handlers.Operation
)

// MaxAnswerBytes bounds what the client reads of one answer.
const MaxAnswerBytes = 64 << 20

// Client talks to one gavel service.
type Client struct {
	base       string
	hc         *http.Client
	apiVersion string
	pageSize   int
	// Poll is the pause between polls when the service gives no
	// Retry-After (operations, pending receipts).
	Poll time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: 60 s timeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithAPIVersion sets the governance api-version (default 2024-07-01).
func WithAPIVersion(v string) Option { return func(c *Client) { c.apiVersion = v } }

// WithPageSize asks for at most n items a page of a list (gavel's
// maxpagesize extension; 0: the service's default).
func WithPageSize(n int) Option { return func(c *Client) { c.pageSize = n } }

// New returns a client of the service at baseURL (e.g. http://127.0.0.1:8080).
func New(baseURL string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), hc: &http.Client{Timeout: 60 * time.Second},
		apiVersion: handlers.APIVersion, Poll: 200 * time.Millisecond}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Answer is an HTTP answer: status, body, content type and the
// transaction id the service named.
type Answer struct {
	Status      int
	Body        []byte
	ContentType string
	TxID        engine.TxID
	Location    string
	RetryAfter  time.Duration
}

// ErrNoAnswer is inside the error of a request that got no answer (a
// refused or reset connection, a timeout): it may or may not have reached
// the service.
var ErrNoAnswer = errors.New("no answer from the service")

// Do sends a request to path (relative, or an absolute URL the service
// handed out, such as a nextLink). Answers of 400 and above are returned
// as the service's typed error.
func (c *Client) Do(ctx context.Context, method, path, contentType string, body []byte) (Answer, error) {
	u := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		u = c.base + path
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return Answer{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return Answer{}, engine.Wrap(engine.KindUnavailable, "Unreachable", fmt.Errorf("%w: %w", ErrNoAnswer, err), "%s %s", method, path)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes))
	if err != nil {
		return Answer{}, engine.Wrap(engine.KindUnavailable, "TruncatedAnswer", err, "%s %s", method, path)
	}
	a := Answer{Status: resp.StatusCode, Body: b, ContentType: resp.Header.Get("Content-Type"), Location: resp.Header.Get("Location")}
	if tx, err := engine.ParseTxID(resp.Header.Get(handlers.HeaderTxID)); err == nil {
		a.TxID = tx
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		var secs int
		if _, err := fmt.Sscan(s, &secs); err == nil && secs >= 0 {
			a.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	if resp.StatusCode >= 400 {
		return a, decodeError(resp.StatusCode, b)
	}
	return a, nil
}

// decodeError turns an error answer into the service's typed error.
func decodeError(status int, body []byte) error {
	var eb handlers.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code == "" {
		return engine.Errorf(kindOf(status), "HTTP"+fmt.Sprint(status), "%s: %s", http.StatusText(status), truncate(body))
	}
	return &engine.Error{Kind: kindOf(status), Code: eb.Error.Code, Message: eb.Error.Message, Details: eb.Error.Details}
}

// kindOf inverts handlers.Status.
func kindOf(status int) engine.Kind {
	switch status {
	case http.StatusBadRequest:
		return engine.KindInvalid
	case http.StatusUnauthorized:
		return engine.KindUnauthorized
	case http.StatusForbidden:
		return engine.KindForbidden
	case http.StatusNotFound:
		return engine.KindNotFound
	case http.StatusConflict:
		return engine.KindConflict
	case http.StatusRequestEntityTooLarge:
		return engine.KindTooLarge
	case http.StatusUnsupportedMediaType:
		return engine.KindUnsupportedMedia
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		return engine.KindUnavailable
	default:
		return engine.KindInternal
	}
}

func truncate(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// gov is path with the client's api-version.
func (c *Client) gov(path string, q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	q.Set("api-version", c.apiVersion)
	return path + "?" + q.Encode()
}

func (c *Client) getJSON(ctx context.Context, path string, v any) (engine.TxID, error) {
	a, err := c.Do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return a.TxID, err
	}
	if err := json.Unmarshal(a.Body, v); err != nil {
		return a.TxID, engine.Wrap(engine.KindInternal, "UnexpectedAnswer", err, "GET %s answered %s", path, truncate(a.Body))
	}
	return a.TxID, nil
}

// waitUntil pauses before the next poll (Poll, or a shorter Retry-After),
// or reports that the deadline has passed.
func (c *Client) waitUntil(ctx context.Context, a Answer, deadline time.Time) error {
	d := c.Poll
	if a.RetryAfter > 0 && a.RetryAfter < d {
		d = a.RetryAfter
	}
	if time.Now().Add(d).After(deadline) {
		return engine.Errorf(engine.KindPending, "StillPending", "still pending after the time allowed (%s)", a.Location)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return engine.Wrap(engine.KindUnavailable, "Timeout", ctx.Err(), "still pending")
	case <-t.C:
		return nil
	}
}

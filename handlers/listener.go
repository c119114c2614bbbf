package handlers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ConnLimits caps the HTTP connections one listener holds open, so that a
// flood (thousands of clients trickling a byte a second) is refused with
// 503s instead of taking every file descriptor of the process.
type ConnLimits struct {
	MaxConns      int // open connections in all
	MaxConnsPerIP int // open connections from one client address
	// RefuseSlots is how many refused connections are answered at once
	// (a 503 and a short drain); beyond it a refused connection is closed
	// without an answer. It bounds the descriptors refusals use.
	RefuseSlots int
}

// Timeouts of the HTTP server: a client has this long to send its headers,
// its whole request, and to read the answer.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 2 * time.Minute
	// MaxHeaderBytes is far above any CCF or gavel client's headers; more
	// is answered 431.
	MaxHeaderBytes = 64 << 10
	// refuseDrain bounds how long a refused connection is read after its
	// 503, so the client sees the answer rather than a reset.
	refuseDrain = 2 * time.Second
)

// NewServer is the HTTP server around handler, with gavel's timeouts.
func NewServer(handler http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// Listener is the HTTP edge below net/http: it enforces ConnLimits and
// rewrites the plain-text answers net/http writes by itself (400 for a
// malformed request, 431, 501, 505, 417) into gavel's JSON error body.
//
// net/http writes those answers straight to the connection, bypassing every
// handler, in one Write of a fixed form ("HTTP/1.1 <status>" + its
// errorHeaders + text). The connection recognises exactly that form; a
// handler's answer always carries a Date header and cannot take it.
type Listener struct {
	net.Listener
	limits ConnLimits
	logger *slog.Logger

	mu          sync.Mutex
	open        int
	perIP       map[string]int
	lastRefusal string
	refuse      chan struct{}

	refused   atomic.Int64
	lastLogNs atomic.Int64
}

// NewListener wraps ln. A zero limit means no cap.
func NewListener(ln net.Listener, limits ConnLimits, logger *slog.Logger) *Listener {
	if limits.RefuseSlots <= 0 {
		limits.RefuseSlots = 16
	}
	return &Listener{Listener: ln, limits: limits, logger: logger, perIP: map[string]int{},
		refuse: make(chan struct{}, limits.RefuseSlots)}
}

// Stats is what a Listener holds and has refused.
type Stats struct {
	Open          int    `json:"open"`
	MaxConns      int    `json:"max_conns"`
	MaxConnsPerIP int    `json:"max_conns_per_ip"`
	Refused       int64  `json:"refused"`
	LastRefusal   string `json:"last_refusal,omitempty"` // its reason
}

// Stats reports the open connections and the refusals so far.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Open: l.open, MaxConns: l.limits.MaxConns, MaxConnsPerIP: l.limits.MaxConnsPerIP,
		Refused: l.refused.Load(), LastRefusal: l.lastRefusal}
}

// Accept returns the next connection within the limits; the others are
// answered 503 (or closed) here and never reach net/http.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if reason := l.admit(ip); reason != "" {
			l.refuseConn(c, ip, reason)
			continue
		}
		return &conn{Conn: c, l: l, ip: ip}, nil
	}
}

// admit counts a connection in, or says why not.
func (l *Listener) admit(ip string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limits.MaxConns > 0 && l.open >= l.limits.MaxConns {
		l.lastRefusal = fmt.Sprintf("the server holds its limit of %d open connections", l.limits.MaxConns)
		return l.lastRefusal
	}
	if l.limits.MaxConnsPerIP > 0 && l.perIP[ip] >= l.limits.MaxConnsPerIP {
		l.lastRefusal = fmt.Sprintf("client address %s holds its limit of %d open connections", ip, l.limits.MaxConnsPerIP)
		return l.lastRefusal
	}
	l.open++
	l.perIP[ip]++
	return ""
}

func (l *Listener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// refuseConn answers 503 with the reason, then reads what the client sent
// (so closing does not reset the connection under the answer), within a
// bounded number of slots and time.
func (l *Listener) refuseConn(c net.Conn, ip, reason string) {
	n := l.refused.Add(1)
	// One log line a second at most, with the running count.
	if now := time.Now().UnixNano(); now-l.lastLogNs.Load() >= int64(time.Second) {
		l.lastLogNs.Store(now)
		l.logger.Warn("http connection refused", slog.String("client", ip), slog.String("reason", reason), slog.Int64("refused_total", n))
	}
	select {
	case l.refuse <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-l.refuse }()
		defer c.Close()
		c.SetDeadline(time.Now().Add(refuseDrain))
		if _, err := c.Write(jsonAnswer(http.StatusServiceUnavailable, "TooManyConnections", reason, "Retry-After: 1\r\n")); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(c, 1<<20))
	}()
}

func remoteIP(c net.Conn) string {
	addr := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// conn is an admitted connection: it leaves the counts when closed and
// turns net/http's own plain-text answers into JSON.
type conn struct {
	net.Conn
	l    *Listener
	ip   string
	once sync.Once
}

func (c *conn) Write(p []byte) (int, error) {
	if b, ok := rewriteServerAnswer(p); ok {
		if _, err := c.Conn.Write(b); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *conn) Close() error {
	c.once.Do(func() { c.l.release(c.ip) })
	return c.Conn.Close()
}

// CloseWrite keeps net/http's graceful close after a 431 (it half-closes
// connections that can).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// The form net/http writes its own error answers in (net/http/server.go,
// conn.serve): "HTTP/1.1 " + status + serverErrorHeaders + text.
const serverErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// rewriteServerAnswer recognises one of net/http's own answers and returns
// it as gavel's JSON error.
func rewriteServerAnswer(p []byte) ([]byte, bool) {
	const proto = "HTTP/1.1 "
	if len(p) > 4096 || !bytes.HasPrefix(p, []byte(proto)) {
		return nil, false
	}
	s := string(p[len(proto):])
	if status, text, ok := strings.Cut(s, serverErrorHeaders); ok && !strings.Contains(status, "\r\n") {
		code, ok := parseStatus(status)
		if !ok || code < 400 || code > 599 || http.StatusText(code) == "" {
			return nil, false
		}
		// The text repeats the status ("400 Bad Request: missing Host"),
		// except for 501's.
		msg := strings.TrimSpace(strings.TrimPrefix(text, strconv.Itoa(code)+" "))
		if msg == "" {
			msg = http.StatusText(code)
		}
		return jsonAnswer(code, serverErrorCode(code), msg, ""), true
	}
	// 417 for an Expect header other than 100-continue: headers only.
	if strings.HasPrefix(s, "417 Expectation Failed\r\n") && strings.HasSuffix(s, "\r\n\r\n") &&
		strings.Contains(s, "\r\nContent-Length: 0\r\n") {
		return jsonAnswer(http.StatusExpectationFailed, "ExpectationFailed", "only the expectation 100-continue is supported", ""), true
	}
	return nil, false
}

func parseStatus(status string) (int, bool) {
	num, _, _ := strings.Cut(status, " ")
	code, err := strconv.Atoi(num)
	return code, err == nil && len(num) == 3
}

// serverErrorCode names net/http's answers the way gavel names its own.
func serverErrorCode(code int) string {
	switch code {
	case http.StatusBadRequest:
		return "MalformedRequest"
	case http.StatusNotImplemented:
		return "UnsupportedTransferEncoding"
	}
	return strings.NewReplacer(" ", "", "-", "", "'", "").Replace(http.StatusText(code))
}

// jsonAnswer is a whole HTTP/1.1 answer that closes the connection, with
// gavel's error body; extra is more header lines, each ending in CRLF.
func jsonAnswer(status int, code, msg, extra string) []byte {
	body, _ := json.Marshal(ErrorBody{Error: ErrorDetail{Code: code, Message: msg}})
	body = append(body, '\n')
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\n%sContent-Length: %d\r\n\r\n",
		status, http.StatusText(status), extra, len(body))
	b.Write(body)
	return b.Bytes()
}

package natslog

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/gavelhq/gavel/engine"
)

func startStandalone(t *testing.T) (*Embedded, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	e, err := StartEmbedded(EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	nc, err := e.ConnectReplica()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return e, nc, js
}

func statements(n, size int) []Msg {
	msgs := make([]Msg, n)
	for i := range msgs {
		msgs[i] = Msg{Subject: LedgerSubject("statement"), Data: make([]byte, size)}
	}
	return msgs
}

// The server's own limit, not just ours: with the client-side check lifted,
// batch message 1001 is refused, the batch dropped, nothing stored.
func TestServerRefusesOversizedBatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, nc, js := startStandalone(t)
	if err := EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(nc)
	if err != nil {
		t.Fatal(err)
	}
	p.maxBatch = MaxBatchMessages + 1
	_, err = p.PublishBatch(ctx, statements(MaxBatchMessages+1, 8), 0)
	if !errors.Is(err, ErrBatchTooLarge) || engine.KindOf(err) != engine.KindTooLarge {
		t.Fatalf("err = %v, want ErrBatchTooLarge", err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.ErrCode != errCodeAtomicTooLarge {
		t.Fatalf("err = %v, want the server's %d", err, errCodeAtomicTooLarge)
	}
	if last, err := p.LastSequence(ctx); err != nil || last != 0 {
		t.Fatalf("LastSequence = %d, %v; want 0", last, err)
	}
}

// A non-final message the server refuses (it has no reply subject to say
// so) leaves a gap; the commit's answer reports the batch incomplete.
func TestRefusedMiddleMessageDropsBatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, nc, js := startStandalone(t)
	cfg := LedgerStreamConfig(1)
	cfg.MaxMsgSize = 512
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(nc)
	if err != nil {
		t.Fatal(err)
	}
	msgs := statements(3, 16)
	msgs[1].Data = make([]byte, 1024)
	_, err = p.PublishBatch(ctx, msgs, 0)
	if !errors.Is(err, ErrBatchIncomplete) || engine.KindOf(err) != engine.KindUnavailable {
		t.Fatalf("err = %v, want ErrBatchIncomplete", err)
	}
	if last, err := p.LastSequence(ctx); err != nil || last != 0 {
		t.Fatalf("LastSequence = %d, %v; want 0", last, err)
	}
	// The publisher is fine afterwards.
	if last, err := p.PublishBatch(ctx, statements(3, 16), 0); err != nil || last != 3 {
		t.Fatalf("next batch: %d, %v", last, err)
	}
}

func TestParseBatchAck(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    batchAck
		wantErr bool
	}{
		{in: `{"stream":"GAVEL_LEDGER","seq":7,"batch":"abc","count":7}`, want: batchAck{Stream: "GAVEL_LEDGER", Seq: 7, Batch: "abc", Count: 7}},
		{in: `{"stream":"GAVEL_LEDGER", "domain":"d", "seq":12}`, want: batchAck{Stream: "GAVEL_LEDGER", Seq: 12}},
		{in: `{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"},"stream":"GAVEL_LEDGER","seq":0}`,
			want: batchAck{Stream: "GAVEL_LEDGER", Error: &APIError{Code: 400, ErrCode: 10071, Description: "wrong last sequence: 5"}}},
		{in: ``, wantErr: true},
		{in: `not json`, wantErr: true},
		{in: `{}`, wantErr: true},
		{in: `{"stream":"GAVEL_LEDGER","seq":0}`, wantErr: true},
		{in: `{"stream":"GAVEL_LEDGER","seq":-1}`, wantErr: true},
	} {
		got, err := parseBatchAck([]byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err = %v", tc.in, err)
			continue
		}
		if tc.wantErr {
			continue
		}
		if got.Stream != tc.want.Stream || got.Seq != tc.want.Seq || got.Batch != tc.want.Batch || got.Count != tc.want.Count ||
			(got.Error == nil) != (tc.want.Error == nil) || (got.Error != nil && *got.Error != *tc.want.Error) {
			t.Errorf("%q: got %+v", tc.in, got)
		}
	}
}

func TestBatchAPIErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		apiErr     APIError
		sentinel   error
		kind       engine.Kind
		code       string
		actual     uint64
		knownAfter bool
	}{
		{APIError{400, 10071, "wrong last sequence: 42"}, ErrWrongLastSequence, engine.KindConflict, "WrongLastSequence", 42, true},
		{APIError{400, 10071, "wrong last sequence: 0"}, ErrWrongLastSequence, engine.KindConflict, "WrongLastSequence", 0, true},
		{APIError{400, 10071, "wrong last sequence"}, ErrWrongLastSequence, engine.KindConflict, "WrongLastSequence", 0, false},
		{APIError{400, 10164, "wrong last sequence"}, ErrWrongLastSequence, engine.KindConflict, "WrongLastSequence", 0, false},
		{APIError{400, 10199, "atomic publish batch is too large: 1000"}, ErrBatchTooLarge, engine.KindTooLarge, "BatchTooLarge", 0, false},
		{APIError{400, 10176, "atomic publish batch is incomplete"}, ErrBatchIncomplete, engine.KindUnavailable, "BatchIncomplete", 0, false},
		{APIError{400, 10175, "atomic publish sequence is missing"}, ErrBatchIncomplete, engine.KindUnavailable, "BatchIncomplete", 0, false},
		{APIError{429, 10210, "atomic publish too many inflight"}, ErrBatchIncomplete, engine.KindUnavailable, "BatchIncomplete", 0, false},
		{APIError{400, 10174, "atomic publish is disabled"}, nil, engine.KindInternal, "AtomicPublishDisabled", 0, false},
		{APIError{400, 10177, "atomic publish unsupported header used: Nats-Expected-Last-Msg-Id"}, nil, engine.KindInternal, "BatchRejected", 0, false},
	} {
		err := batchAPIError(&tc.apiErr, 7)
		e := engine.AsError(err)
		if e.Kind != tc.kind || e.Code != tc.code {
			t.Errorf("%d: got %v kind %d", tc.apiErr.ErrCode, err, e.Kind)
		}
		if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
			t.Errorf("%d: %v is not %v", tc.apiErr.ErrCode, err, tc.sentinel)
		}
		var wrong *WrongLastSequenceError
		if errors.As(err, &wrong) && (wrong.Expected != 7 || wrong.Actual != tc.actual || wrong.Known != tc.knownAfter) {
			t.Errorf("%d: %+v", tc.apiErr.ErrCode, wrong)
		}
		var apiErr *APIError
		if tc.sentinel != ErrWrongLastSequence && (!errors.As(err, &apiErr) || apiErr.ErrCode != tc.apiErr.ErrCode) {
			t.Errorf("%d: server error lost from %v", tc.apiErr.ErrCode, err)
		}
	}
}

func TestKindOfSubject(t *testing.T) {
	for subject, want := range map[string]string{
		"gavel.ledger.statement":                  "statement",
		"gavel.ledger.gov":                        "gov",
		"gavel.ledger.node_join":                  "node_join",
		"gavel.ledger.v2":                         "v2",
		"gavel.ledger.":                           "",
		"gavel.ledger.Gov":                        "",
		"gavel.ledger.2gov":                       "",
		"gavel.ledger.gov.x":                      "",
		"gavel.ledger.*":                          "",
		"gavel.ledger.>":                          "",
		"gavel.feed.params":                       "",
		"gavel.ledger.gov ":                       "",
		"gavel.ledger." + strings.Repeat("a", 33): "",
		"gavel.ledger." + strings.Repeat("a", 32): strings.Repeat("a", 32),
	} {
		kind, ok := KindOfSubject(subject)
		if kind != want || ok != (want != "") {
			t.Errorf("KindOfSubject(%q) = %q, %v; want %q", subject, kind, ok, want)
		}
	}
}

func TestServerOptions(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		cfg     EmbeddedConfig
		host    string
		port    int
		cluster bool
		wantErr bool
	}{
		{name: "default listen", cfg: EmbeddedConfig{DataDir: dir}, host: "127.0.0.1", port: 4222},
		{name: "random port", cfg: EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0"}, host: "127.0.0.1", port: server.RANDOM_PORT},
		{name: "all interfaces", cfg: EmbeddedConfig{DataDir: dir, Listen: ":0"}, host: "0.0.0.0", port: server.RANDOM_PORT},
		{name: "cluster", cfg: EmbeddedConfig{DataDir: dir, ServerName: "a", Cluster: &ClusterConfig{Name: "c", Listen: "127.0.0.1:0", Routes: []string{"nats-route://127.0.0.1:6222"}}}, host: "127.0.0.1", port: 4222, cluster: true},
		{name: "no data dir", cfg: EmbeddedConfig{}, wantErr: true},
		{name: "bad listen", cfg: EmbeddedConfig{DataDir: dir, Listen: "localhost"}, wantErr: true},
		{name: "bad port", cfg: EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:70000"}, wantErr: true},
		{name: "cluster without name", cfg: EmbeddedConfig{DataDir: dir, Cluster: &ClusterConfig{Name: "c"}}, wantErr: true},
		{name: "cluster without cluster name", cfg: EmbeddedConfig{DataDir: dir, ServerName: "a", Cluster: &ClusterConfig{}}, wantErr: true},
		{name: "bad route", cfg: EmbeddedConfig{DataDir: dir, ServerName: "a", Cluster: &ClusterConfig{Name: "c", Routes: []string{"::"}}}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, seeds, err := serverOptions(tc.cfg)
			if tc.wantErr || err != nil {
				if !tc.wantErr || engine.KindOf(err) != engine.KindInvalid {
					t.Fatalf("err = %v, want KindInvalid: %v", err, tc.wantErr)
				}
				return
			}
			if opts.Host != tc.host || opts.Port != tc.port || !opts.JetStream || !opts.SyncAlways || opts.HTTPPort != 0 || !opts.NoSigs {
				t.Fatalf("options %+v", opts)
			}
			if len(opts.Nkeys) != 7 || opts.MaxConn != DefaultMaxConnections {
				t.Fatalf("users %+v, max conn %d", opts.Nkeys, opts.MaxConn)
			}
			for i, u := range slices.Concat(serviceUsers, ClientKinds) {
				if opts.Nkeys[i].Nkey != seeds.Keys[u] || opts.Nkeys[i].Permissions == nil {
					t.Fatalf("user %s: %+v", u, opts.Nkeys[i])
				}
			}
			if tc.cluster != (opts.Cluster.Name != "") || (tc.cluster && (opts.Cluster.Port != server.RANDOM_PORT || len(opts.Routes) != 1)) {
				t.Fatalf("cluster %+v routes %v", opts.Cluster, opts.Routes)
			}
		})
	}
}

// TestPermissionsByUser checks the permission lists themselves; the
// server's enforcement of them is auth_test.go's.
func TestPermissionsByUser(t *testing.T) {
	type want struct{ pub, sub []string }
	cases := map[User]struct{ allowed, denied want }{
		UserSequencer: {
			allowed: want{pub: []string{"gavel.ledger.statement", "$JS.API.STREAM.CREATE.GAVEL_LEDGER", "$JS.API.DIRECT.GET.GAVEL_LEDGER", "$JS.API.CONSUMER.DELETE.GAVEL_LEDGER.c"}, sub: []string{"_INBOX.sequencer.x.y"}},
			denied:  want{pub: []string{"gavel.feed.params", "_INBOX.member.x", "gavel.submit.statement", "$JS.API.CONSUMER.CREATE.GAVEL_LEDGER.c"}, sub: []string{"gavel.submit.statement", "_INBOX.member.x", "gavel.ledger.statement"}},
		},
		UserFeeds: {
			allowed: want{pub: []string{"gavel.feed.params"}, sub: []string{"_INBOX.feeds.x"}},
			denied:  want{pub: []string{"gavel.ledger.statement", "$JS.API.STREAM.DELETE.GAVEL_FEEDS", "_INBOX.node.x"}, sub: []string{"gavel.submit.statement"}},
		},
		UserHandler: {
			allowed: want{pub: []string{"_INBOX.member.abc.1", "_INBOX.node.abc.1"}, sub: []string{"gavel.submit.statement", "gavel.submit.gov.ballot"}},
			denied: want{pub: []string{"gavel.ledger.statement", "gavel.feed.params", "$JS.API.STREAM.INFO.GAVEL_LEDGER", "_INBOX.auditor.x", "_INBOX.sequencer.x", "gavel.submit.statement"},
				sub: []string{"_INBOX.member.x", "gavel.ledger.statement"}},
		},
		UserMember: {
			allowed: want{pub: []string{"gavel.submit.gov.proposal", "gavel.submit.statement"}, sub: []string{"_INBOX.member.x.y"}},
			denied: want{pub: []string{"gavel.submit.node.join", "gavel.ledger.gov", "$JS.API.DIRECT.GET.GAVEL_LEDGER", "_INBOX.node.x"},
				sub: []string{"_INBOX.>", "_INBOX.node.x", "gavel.feed.params", "gavel.submit.statement"}},
		},
		UserNode: {
			allowed: want{pub: []string{"gavel.submit.node.join", "gavel.submit.statement", "$JS.API.CONSUMER.CREATE.GAVEL_FEEDS.c.gavel.feed.params", "$JS.API.DIRECT.GET.GAVEL_FEEDS.gavel.feed.map"}, sub: []string{"_INBOX.node.x"}},
			denied: want{pub: []string{"gavel.submit.gov.proposal", "$JS.API.CONSUMER.CREATE.GAVEL_LEDGER.c", "$JS.API.CONSUMER.DELETE.GAVEL_FEEDS.c", "$JS.API.CONSUMER.DURABLE.CREATE.GAVEL_FEEDS.d"},
				sub: []string{"_INBOX.member.x", "gavel.feed.params"}},
		},
		UserAuditor: {
			allowed: want{pub: []string{"$JS.API.CONSUMER.CREATE.GAVEL_LEDGER.c", "$JS.API.CONSUMER.MSG.NEXT.GAVEL_LEDGER.c", "$JS.API.DIRECT.GET.GAVEL_FEEDS.gavel.feed.params"}, sub: []string{"_INBOX.auditor.x"}},
			denied: want{pub: []string{"gavel.submit.statement", "$JS.API.CONSUMER.CREATE.GAVEL_FEEDS.c", "$JS.API.STREAM.PURGE.GAVEL_LEDGER", "$JS.API.STREAM.MSG.DELETE.GAVEL_LEDGER", "$JS.API.CONSUMER.DELETE.GAVEL_LEDGER.c"},
				sub: []string{"gavel.ledger.statement"}},
		},
	}
	allows := func(sp *server.SubjectPermission, subject string) bool {
		return matchesAny(sp.Allow, subject) && !matchesAny(sp.Deny, subject)
	}
	for u, c := range cases {
		p := permissions(u)
		for _, s := range c.allowed.pub {
			if !allows(p.Publish, s) {
				t.Errorf("%s may not publish %s", u, s)
			}
		}
		for _, s := range c.denied.pub {
			if allows(p.Publish, s) {
				t.Errorf("%s may publish %s", u, s)
			}
		}
		for _, s := range c.allowed.sub {
			if !allows(p.Subscribe, s) {
				t.Errorf("%s may not subscribe %s", u, s)
			}
		}
		for _, s := range c.denied.sub {
			if allows(p.Subscribe, s) {
				t.Errorf("%s may subscribe %s", u, s)
			}
		}
	}
}

// matchesAny is NATS subject matching for the patterns used here.
func matchesAny(patterns []string, subject string) bool {
	for _, p := range patterns {
		if server.SubjectMatchesFilter(subject, p) {
			return true
		}
	}
	return false
}

func TestClassifyCredentials(t *testing.T) {
	user, _ := nkeys.CreateUser()
	seed, _ := user.Seed()
	op, _ := nkeys.CreateOperator()
	opSeed, _ := op.Seed()
	for name, tc := range map[string]struct {
		in   []byte
		want credentialKind
	}{
		"user seed":       {seed, credentialsNkeySeed},
		"seed with space": {append(append([]byte("  \n"), seed...), '\n'), credentialsNkeySeed},
		"operator seed":   {opSeed, credentialsUnknown},
		"creds marker":    {[]byte("-----BEGIN NATS USER JWT-----\nxyz\n------END NATS USER JWT------\n"), credentialsJWT},
		"empty":           {nil, credentialsUnknown},
		"garbage":         {[]byte("SUgarbage"), credentialsUnknown},
	} {
		if got := classifyCredentials(tc.in); got != tc.want {
			t.Errorf("%s: %d, want %d", name, got, tc.want)
		}
	}
}

func TestReachable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0.0.0.0:4222", "127.0.0.1:4222"},
		{"[::]:4222", "127.0.0.1:4222"},
		{"127.0.0.1:5000", "127.0.0.1:5000"},
		{"[::1]:5000", "[::1]:5000"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := reachable(addr); got != tc.want {
			t.Errorf("reachable(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestClassifyDirectReply(t *testing.T) {
	status := func(code, desc string) nats.Header {
		return nats.Header{"Status": {code}, "Description": {desc}}
	}
	for _, tc := range []struct {
		name string
		msg  nats.Msg
		want directReply
	}{
		{"entry", nats.Msg{Data: []byte("x"), Header: nats.Header{"Nats-Sequence": {"3"}}}, directEntry},
		{"empty entry", nats.Msg{Header: nats.Header{"Nats-Sequence": {"3"}}}, directEntry},
		{"end of batch", nats.Msg{Header: status("204", "EOB")}, directEndOfBatch},
		{"not found", nats.Msg{Header: status("404", "Message Not Found")}, directNotFound},
		{"no responders", nats.Msg{Header: status("503", "")}, directNoReplica},
		{"bad request", nats.Msg{Header: status("400", "Bad Request")}, directFailed},
		{"timeout", nats.Msg{Header: status("408", "Request Timeout")}, directFailed},
	} {
		if got := classifyDirectReply(&tc.msg); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// Without direct gets on the stream nobody answers them: Range gives up
// with a typed error instead of waiting forever.
func TestRangeGivesUpWithoutDirectGets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, nc, js := startStandalone(t)
	cfg := LedgerStreamConfig(1)
	cfg.AllowDirect = false
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PublishBatch(ctx, statements(3, 8), 0); err != nil {
		t.Fatal(err)
	}
	r := NewReader(js)
	r.stall = 200 * time.Millisecond
	calls := 0
	err = r.Range(ctx, 1, func(engine.LedgerMsg) error { calls++; return nil })
	if e := engine.AsError(err); e.Kind != engine.KindUnavailable || e.Code != "LedgerUnavailable" || calls != 0 {
		t.Fatalf("Range = %v after %d calls, want LedgerUnavailable", err, calls)
	}
}

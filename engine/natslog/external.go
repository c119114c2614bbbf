package natslog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine"
)

// What gavel needs of a NATS cluster it did not start (gavel serve --nats):
// every write fsynced before its ack, a server with the peer-removal fixes
// of 2.12.3 (shared/notes/jetstream-replication.md, Jepsen), and three
// JetStream servers for R3 streams.
const (
	MinServerVersion    = "2.12.3"
	MinJetStreamServers = 3
)

// Why an external cluster is refused; each leaves it unchanged.
var (
	ErrNotSyncAlways  = errors.New("a JetStream server does not sync every write before its ack (set sync_interval: always)")
	ErrServerTooOld   = errors.New("a NATS server is older than " + MinServerVersion)
	ErrTooFewServers  = fmt.Errorf("fewer than %d JetStream servers", MinJetStreamServers)
	ErrNoLedgerRights = errors.New("the credentials may not write gavel's ledger or manage its streams")
)

// ServerReport is what one server of a cluster says of itself.
type ServerReport struct {
	Name       string
	Version    string
	JetStream  bool
	SyncAlways bool
}

// JudgeCluster refuses a cluster gavel cannot run on safely; allowSmall
// lets fewer than MinJetStreamServers through (development only).
func JudgeCluster(servers []ServerReport, allowSmall bool) error {
	js := 0
	for _, s := range servers {
		if !versionAtLeast(s.Version, MinServerVersion) {
			return engine.Wrap(engine.KindInvalid, "NatsTooOld", ErrServerTooOld, "server %s runs %q", s.Name, s.Version)
		}
		if !s.JetStream {
			continue
		}
		js++
		if !s.SyncAlways {
			return engine.Wrap(engine.KindInvalid, "NatsNotSyncAlways", ErrNotSyncAlways, "server %s", s.Name)
		}
	}
	if js < MinJetStreamServers && !allowSmall {
		return engine.Wrap(engine.KindInvalid, "NatsTooSmall", ErrTooFewServers, "%d JetStream servers answered (allow fewer for development only)", js)
	}
	return nil
}

// versionAtLeast compares major.minor.patch; a pre-release or build
// suffix counts as that release.
func versionAtLeast(v, min string) bool {
	parse := func(s string) ([3]int, bool) {
		var out [3]int
		s = strings.TrimPrefix(s, "v")
		if i := strings.IndexAny(s, "-+"); i >= 0 {
			s = s[:i]
		}
		parts := strings.Split(s, ".")
		if len(parts) != 3 {
			return out, false
		}
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 {
				return out, false
			}
			out[i] = n
		}
		return out, true
	}
	a, okA := parse(v)
	b, _ := parse(min)
	if !okA {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return true
}

// SurveyCluster asks every server of the cluster for its JetStream report
// ($SYS.REQ.SERVER.PING.JSZ, a system account user). It gathers answers
// until as many servers as the meta group counts have answered, or ctx
// ends; then it returns what it has.
func SurveyCluster(ctx context.Context, sys *nats.Conn) ([]ServerReport, error) {
	inbox := sys.NewRespInbox()
	sub, err := sys.SubscribeSync(inbox)
	if err != nil {
		return nil, unavailable(err, "cannot subscribe for the servers' answers")
	}
	defer sub.Unsubscribe()
	if err := sys.PublishRequest("$SYS.REQ.SERVER.PING.JSZ", inbox, []byte(`{}`)); err != nil {
		return nil, unavailable(err, "cannot ask the servers")
	}
	var out []ServerReport
	want := 0
	for want == 0 || len(out) < want {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if len(out) > 0 && ctx.Err() != nil {
				return out, nil
			}
			return nil, unavailable(err, "no server answered $SYS.REQ.SERVER.PING.JSZ (are these system account credentials?)")
		}
		var resp struct {
			Server *server.ServerInfo `json:"server"`
			Data   *server.JSInfo     `json:"data"`
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil || resp.Server == nil {
			continue
		}
		r := ServerReport{Name: resp.Server.Name, Version: resp.Server.Version}
		if d := resp.Data; d != nil && !d.Disabled {
			r.JetStream, r.SyncAlways = true, d.Config.SyncAlways
			if d.Meta != nil && d.Meta.Size > want {
				want = d.Meta.Size
			}
		}
		// A standalone server has no meta group: it is the whole cluster.
		if resp.Data == nil || resp.Data.Meta == nil {
			want = max(want, 1)
		}
		out = append(out, r)
	}
	return out, nil
}

// CheckExternal surveys the cluster and judges it (a bounded wait for the
// answers); it returns the servers that answered.
func CheckExternal(ctx context.Context, sys *nats.Conn, allowSmall bool) ([]ServerReport, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	servers, err := SurveyCluster(ctx, sys)
	if err != nil {
		return nil, err
	}
	return servers, JudgeCluster(servers, allowSmall)
}

// JetStreamServers counts the servers that run JetStream.
func JetStreamServers(servers []ServerReport) int {
	n := 0
	for _, s := range servers {
		if s.JetStream {
			n++
		}
	}
	return n
}

// ledgerRights are the publishes a replica's ledger user needs.
var ledgerRights = []string{
	LedgerSubject("statement"),
	"$JS.API.STREAM.CREATE." + LedgerStream, "$JS.API.STREAM.UPDATE." + LedgerStream,
	"$JS.API.STREAM.INFO." + LedgerStream, "$JS.API.DIRECT.GET." + LedgerStream,
}

// CheckLedgerRights asks the server what nc's user may publish
// ($SYS.REQ.USER.INFO) and refuses a user that cannot write the ledger or
// manage its stream.
func CheckLedgerRights(ctx context.Context, nc *nats.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, "$SYS.REQ.USER.INFO", nil)
	if err != nil {
		return engine.Wrap(engine.KindInvalid, "NoLedgerRights", fmt.Errorf("%w: %w", ErrNoLedgerRights, err), "the server does not say what these credentials may do")
	}
	var resp struct {
		Data *server.UserInfo `json:"data"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil || resp.Data == nil {
		return engine.Errorf(engine.KindInternal, "BadNatsAnswer", "$SYS.REQ.USER.INFO answered %q", msg.Data)
	}
	return judgeRights(resp.Data.Permissions)
}

// judgeRights refuses permissions that deny any of ledgerRights.
func judgeRights(p *server.Permissions) error {
	if p == nil || p.Publish == nil {
		return nil
	}
	for _, subject := range ledgerRights {
		allowed := len(p.Publish.Allow) == 0
		for _, a := range p.Publish.Allow {
			allowed = allowed || subjectMatches(a, subject)
		}
		for _, d := range p.Publish.Deny {
			allowed = allowed && !subjectMatches(d, subject)
		}
		if !allowed {
			return engine.Wrap(engine.KindInvalid, "NoLedgerRights", ErrNoLedgerRights, "they may not publish %s", subject)
		}
	}
	return nil
}

// subjectMatches says whether subject falls under pattern (tokens, "*"
// for one token, a final ">" for one or more).
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return i == len(p)-1 && len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}

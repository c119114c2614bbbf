package natslog

import (
	"errors"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

func TestJudgeCluster(t *testing.T) {
	ok := ServerReport{Name: "a", Version: "2.15.2", JetStream: true, SyncAlways: true}
	three := func(mod func(*ServerReport)) []ServerReport {
		out := []ServerReport{ok, ok, ok}
		mod(&out[1])
		return out
	}
	for _, c := range []struct {
		name    string
		servers []ServerReport
		small   bool
		want    error
	}{
		{"three good servers", three(func(*ServerReport) {}), false, nil},
		{"lazy fsync", three(func(s *ServerReport) { s.SyncAlways = false }), false, ErrNotSyncAlways},
		{"2.12.2", three(func(s *ServerReport) { s.Version = "2.12.2" }), false, ErrServerTooOld},
		{"2.12.3 exactly", three(func(s *ServerReport) { s.Version = "2.12.3" }), false, nil},
		{"a pre-release of 2.13", three(func(s *ServerReport) { s.Version = "2.13.0-beta.1" }), false, nil},
		{"an unparsable version", three(func(s *ServerReport) { s.Version = "dev" }), false, ErrServerTooOld},
		{"an old server without JetStream", three(func(s *ServerReport) { s.JetStream, s.Version = false, "2.9.0" }), false, ErrServerTooOld},
		{"two JetStream servers", three(func(s *ServerReport) { s.JetStream = false }), false, ErrTooFewServers},
		{"two, allowed for development", three(func(s *ServerReport) { s.JetStream = false }), true, nil},
		{"none", nil, false, ErrTooFewServers},
		{"one lazy server, allowed small", []ServerReport{{Name: "x", Version: "2.15.2", JetStream: true}}, true, ErrNotSyncAlways},
	} {
		if err := JudgeCluster(c.servers, c.small); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestSubjectMatches(t *testing.T) {
	for _, c := range []struct {
		pattern, subject string
		want             bool
	}{
		{"gavel.ledger.>", "gavel.ledger.statement", true},
		{"gavel.ledger.>", "gavel.ledger", false},
		{"gavel.*.statement", "gavel.ledger.statement", true},
		{"gavel.*", "gavel.ledger.statement", false},
		{">", "anything.at.all", true},
		{"$JS.API.STREAM.>", "$JS.API.STREAM.UPDATE.GAVEL_LEDGER", true},
		{"$JS.API.STREAM.INFO.*", "$JS.API.STREAM.UPDATE.GAVEL_LEDGER", false},
		{"a.>.b", "a.x.b", false},
		{"gavel.ledger.statement", "gavel.ledger.statement", true},
	} {
		if got := subjectMatches(c.pattern, c.subject); got != c.want {
			t.Errorf("%q ~ %q: %v", c.pattern, c.subject, got)
		}
	}
}

func TestJudgeRights(t *testing.T) {
	perm := func(allow, deny []string) *server.Permissions {
		return &server.Permissions{Publish: &server.SubjectPermission{Allow: allow, Deny: deny}}
	}
	for _, c := range []struct {
		name string
		p    *server.Permissions
		ok   bool
	}{
		{"no permissions: everything", nil, true},
		{"gavel's sequencer", permissions(UserSequencer), true},
		{"the handler", permissions(UserHandler), false},
		{"an auditor", permissions(UserAuditor), false},
		{"all but the ledger", perm([]string{">"}, []string{LedgerSubjects}), false},
		{"the ledger but not stream updates", perm([]string{"gavel.>", "$JS.API.>"}, []string{"$JS.API.STREAM.UPDATE.>"}), false},
	} {
		if err := judgeRights(c.p); (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrNoLedgerRights)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/engine/state"
	"github.com/gavelhq/gavel/handlers"
)

// scraped is one /metrics answer, parsed.
type scraped map[string]*dto.MetricFamily

func scrapeMetrics(t testing.TB, url string) scraped {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for name := range fams {
		if !strings.HasPrefix(name, "gavel_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("metric %s is not named gavel_", name)
		}
	}
	return fams
}

// has reports whether the family has a series with the labels (pairs).
func (s scraped) has(name string, labels ...string) bool {
	_, n := s.sum(name, labels...)
	return n > 0
}

// value is the sum over the family's series that carry the labels (name,
// value pairs): a counter's or gauge's value, a histogram's sample count.
func (s scraped) value(name string, labels ...string) float64 {
	v, _ := s.sum(name, labels...)
	return v
}

// histSum is the sum of a histogram's samples over matching series.
func (s scraped) histSum(name string, labels ...string) float64 {
	var total float64
	for _, m := range s.matching(name, labels...) {
		total += m.GetHistogram().GetSampleSum()
	}
	return total
}

func (s scraped) sum(name string, labels ...string) (float64, int) {
	var total float64
	ms := s.matching(name, labels...)
	for _, m := range ms {
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total, len(ms)
}

func (s scraped) matching(name string, labels ...string) []*dto.Metric {
	f := s[name]
	if f == nil {
		return nil
	}
	var out []*dto.Metric
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// TestMetricsFollowTraffic scrapes a real service before and after known
// traffic and checks that every family moved as the traffic says.
func TestMetricsFollowTraffic(t *testing.T) {
	o := newObserved(t)
	ctx := context.Background()
	waitFor(t, "a signed genesis", func() bool { m := o.r.Store().Meta(); return m.Seqno > 0 && m.Seqno == m.LastSignature })
	before := scrapeMetrics(t, o.url)
	seqBefore := o.r.Store().Meta().Seqno

	p := o.populate(3)
	for _, tx := range p.statements {
		if _, err := o.c.Receipt(ctx, tx, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := o.c.TransparentStatement(ctx, tx, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if status, _, body := get(t, o.url+"/receipt?transaction_id="+p.statements[0]); status != 200 {
		t.Fatalf("/receipt: %d %s", status, body)
	}
	// A ballot that runs past the deterministic budget fails its call.
	if _, _, err := o.c.Vote(ctx, o.members[0], p.open, "export function vote() { for (;;) {} }"); err != nil {
		t.Logf("the looping ballot: %v", err)
	}
	waitFor(t, "a signed tail", func() bool { m := o.r.Store().Meta(); return m.Seqno == m.LastSignature })
	after := scrapeMetrics(t, o.url)
	meta := o.r.Store().Meta()

	delta := func(name string, labels ...string) float64 {
		return after.value(name, labels...) - before.value(name, labels...)
	}
	entries := float64(meta.Seqno - seqBefore)
	checks := []struct {
		what      string
		got, want float64
	}{
		{"entries committed", delta("gavel_sequencer_entries_total"), entries},
		{"ledger seqno", after.value("gavel_ledger_seqno"), float64(meta.Seqno)},
		{"last signature", after.value("gavel_ledger_last_signature_seqno"), float64(meta.LastSignature)},
		{"rounds = round-size samples", delta("gavel_sequencer_rounds_total"), delta("gavel_sequencer_round_entries")},
		{"round sizes add up to the entries", after.histSum("gavel_sequencer_round_entries") - before.histSum("gavel_sequencer_round_entries"), entries},
		{"append phase samples = rounds", delta("gavel_sequencer_round_phase_seconds", "phase", "append"), delta("gavel_sequencer_rounds_total")},
		{"statements committed", delta("gavel_commit_latency_seconds", "kind", "statement", "outcome", "committed"), 3},
		{"proposals committed", delta("gavel_commit_latency_seconds", "kind", "proposal", "outcome", "committed"), 3},
		{"entry receipts served", delta("gavel_receipts_served_total", "route", "GET /entries/{txid}"), 3},
		{"transparent statements served", delta("gavel_receipts_served_total", "route", "GET /entries/{txid}/statement"), 3},
		{"receipts served", delta("gavel_receipts_served_total", "route", "GET /receipt"), 1},
		{"statement registrations answered", delta("gavel_http_requests_total", "route", "POST /entries", "code", "202"), 3},
		{"budget failures of ballots", delta("gavel_script_failures_total", "call", "vote", "kind", "budget"), 1},
		{"trusted participants", after.value("gavel_nodes", "status", "Trusted", "role", "participant"), 2},
		{"pending participants", after.value("gavel_nodes", "status", "Pending", "role", "participant"), 1},
		{"the replica itself", after.value("gavel_nodes", "role", "service"), 1},
		{"map size", after.value("gavel_network_map_nodes"), 2},
		{"pending update", after.value("gavel_network_parameters_update_pending"), 1},
		{"acceptances", after.value("gavel_network_parameters_update_acceptances"), 1},
		{"not yet accepted", after.value("gavel_network_parameters_update_unaccepted_nodes"), 1},
		{"view", after.value("gavel_view"), 1},
		{"leader", after.value("gavel_leader", "holder", o.r.Node().ID), 1},
		{"writable", after.value("gavel_writable"), 1},
		{"queue capacity", after.value("gavel_sequencer_queue_capacity"), float64(sequencer.DefaultConfig().QueueSize)},
		{"queue depth", after.value("gavel_sequencer_queue_depth"), 0},
		{"state lag on a quiet log", after.value("gavel_projection_lag_entries", "projection", "state"), 0},
		{"no read model failed", after.value("gavel_scrape_read_errors"), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	atLeast := []struct {
		what      string
		got, want float64
	}{
		{"signature entries", delta("gavel_signature_entries_total"), 1},
		{"validate calls", delta("gavel_script_budget_used_steps", "call", "validate"), 2},
		{"resolve calls", delta("gavel_script_budget_used_steps", "call", "resolve"), 2},
		{"apply calls", delta("gavel_script_budget_used_steps", "call", "apply"), 1},
		{"vote calls", delta("gavel_script_budget_used_steps", "call", "vote"), 3},
		{"budget used", after.histSum("gavel_script_budget_used_steps") - before.histSum("gavel_script_budget_used_steps"), 1},
		{"execute time", delta("gavel_sequencer_phase_seconds_total", "phase", "execute"), 1e-9},
		{"bytes appended", after.histSum("gavel_sequencer_round_bytes") - before.histSum("gavel_sequencer_round_bytes"), entries * 64},
		{"deadline is ahead", after.value("gavel_network_parameters_update_deadline_seconds"), 1},
	}
	for _, c := range atLeast {
		if c.got < c.want {
			t.Errorf("%s: %v, want at least %v", c.what, c.got, c.want)
		}
	}
	if d := after.value("gavel_network_parameters_update_deadline_seconds"); d > 3600 {
		t.Errorf("deadline %v s away, want within the hour", d)
	}
	for _, name := range []string{"gavel_projection_lag_entries"} {
		for _, proj := range []string{"state", "nodes", "network_map"} {
			if !after.has(name, "projection", proj) {
				t.Errorf("%s has no %s series", name, proj)
			}
		}
	}
	// Prometheus's own naming conventions, checked by its linter.
	var fams []*dto.MetricFamily
	for name, f := range after {
		if strings.HasPrefix(name, "gavel_") {
			fams = append(fams, f)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(fams).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %+v", err, problems)
	}
	if after.has("gavel_write_fault") || delta("gavel_write_errors_total") != 0 {
		t.Errorf("a healthy service reports write faults: %v", after["gavel_write_fault"])
	}
}

func get(t testing.TB, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// stopByRival makes the replica's sequencer stop for good, as it does when
// another replica takes the write path: a sequencer of a newer view
// appends to the same stream, and the replica's next round finds it.
func stopByRival(t *testing.T, o *observed) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	nc := o.r.SequencerConn()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	log, err := replica.NewLedgerLog(nc, js, o.r.Node().Signer())
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(filepath.Join(t.TempDir(), "rival"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := state.CatchUp(ctx, st, log); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	rival := sequencer.New(sequencer.DefaultConfig(), o.r.Sequencer().View()+1, st, log, nil, logger)
	stopped := make(chan struct{})
	go func() { rival.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	signed, err := o.iss.Sign("rival", "text/plain", []byte("from a newer view"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := o.r.VerifyStatement(signed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rival.Submit(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	// The replica's sequencer learns of it on its next round.
	mine, _ := o.iss.Sign("mine", "text/plain", []byte("from the old view"), time.Now())
	status, _, body := doPost(t, o.url+"/entries", "application/cose", mine)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("a write to a deposed sequencer: %d %s", status, body)
	}
	waitFor(t, "the sequencer to stop", func() bool { f := o.r.WriteFault(); return f != nil && f.Code == sequencer.CodeSequencerStopped })
}

func doPost(t testing.TB, url, ct string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Post(url, ct, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestProbesWithAStoppedSequencer: with the write path gone, /healthz
// says alive, /readyz ready for reads and not for writes (with the
// reason), and /metrics answers and says so.
func TestProbesWithAStoppedSequencer(t *testing.T) {
	o := newObserved(t)
	probe := func(path string) (int, handlers.Health) {
		t.Helper()
		status, h, body := get(t, o.url+path)
		var v handlers.Health
		if h.Get("Content-Type") != "application/json" || json.Unmarshal(body, &v) != nil {
			t.Fatalf("%s: %d %q %s", path, status, h.Get("Content-Type"), body)
		}
		return status, v
	}
	for _, c := range []struct {
		path   string
		status int
		want   string
	}{
		{"/healthz", 200, handlers.HealthOK},
		{"/readyz", 200, handlers.HealthReady},
		{"/readyz?write=1", 200, handlers.HealthReady},
	} {
		if status, v := probe(c.path); status != c.status || v.Status != c.want {
			t.Errorf("healthy %s: %d %+v", c.path, status, v)
		}
	}
	if status, _, _ := get(t, o.url+"/readyz?write=maybe"); status != http.StatusBadRequest {
		t.Errorf("/readyz?write=maybe: %d, want 400", status)
	}

	before := scrapeMetrics(t, o.url)
	stopByRival(t, o)
	if status, v := probe("/healthz"); status != 200 || v.Status != handlers.HealthOK {
		t.Errorf("/healthz with a stopped sequencer: %d %+v", status, v)
	}
	if status, v := probe("/readyz"); status != 200 || v.Checks["read"] != handlers.HealthOK {
		t.Errorf("/readyz (reads) with a stopped sequencer: %d %+v", status, v)
	}
	status, v := probe("/readyz?write=1")
	if status != http.StatusServiceUnavailable || v.Status != handlers.HealthNotReady || v.Reason != sequencer.CodeSequencerStopped ||
		v.Message == "" || v.Checks["write"] != sequencer.CodeSequencerStopped || v.Checks["read"] != handlers.HealthOK {
		t.Errorf("/readyz?write=1 with a stopped sequencer: %d %+v", status, v)
	}
	after := scrapeMetrics(t, o.url)
	if after.value("gavel_writable") != 0 || after.value("gavel_write_fault", "code", sequencer.CodeSequencerStopped) != 1 {
		t.Errorf("metrics do not say the write path stopped: writable %v, fault %v", after.value("gavel_writable"), after["gavel_write_fault"])
	}
	if d := after.value("gavel_write_errors_total") - before.value("gavel_write_errors_total"); d < 1 {
		t.Errorf("the refused write is not counted as a write error (%v)", d)
	}
	// Deposed, the replica reports the view of the last entry it applied:
	// the rival's.
	if after.value("gavel_view") != 2 {
		t.Errorf("view %v, want the rival's 2", after.value("gavel_view"))
	}
}

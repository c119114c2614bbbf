package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/projections"
)

// Observed is what /metrics, /readyz and the dashboard read from a replica
// at scrape time. Every method answers from memory (or a bounded read), so
// a stopped sequencer or a full disk never makes a probe wait.
type Observed interface {
	// Leadership is who holds the write path and in which view.
	Leadership() (holder string, view uint64)
	// Sequencing is the sequencer's cumulative counters and the applied
	// state's position.
	Sequencing() Sequencing
	// ProjectionLag is how many entries each read model is behind.
	ProjectionLag(ctx context.Context) map[string]uint64
}

// Sequencing is Observed's view of the write path.
type Sequencing struct {
	Rounds, Entries        uint64
	Execute, Append, Apply time.Duration
	Queued, QueueCapacity  int
	Seqno, LastSignature   uint64
	Voids                  uint64
	Fault                  *WriteError // nil while writable
}

// scrapeTimeout bounds the read-model part of a scrape.
const scrapeTimeout = 2 * time.Second

// Metrics holds gavel's Prometheus metrics: histograms and counters fed by
// the engine's hooks (ObserveRound, ObserveCall, ObserveCommit) and by the
// handlers, and a collector reading the replica at scrape time.
type Metrics struct {
	reg *prometheus.Registry

	commitLatency  *prometheus.HistogramVec
	roundEntries   prometheus.Histogram
	roundBytes     prometheus.Histogram
	roundPhase     *prometheus.HistogramVec
	signatures     prometheus.Counter
	scriptFuel     *prometheus.HistogramVec
	scriptFailures *prometheus.CounterVec
	writeErrors    *prometheus.CounterVec
	receipts       *prometheus.CounterVec
	requests       *prometheus.CounterVec
}

// NewMetrics makes a registry with gavel's metrics and Go's and the
// process's own.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.commitLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gavel_commit_latency_seconds", Help: "Time from submitting a verified command to its answer, by entry kind and outcome.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"kind", "outcome"})
	m.roundEntries = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "gavel_sequencer_round_entries", Help: "Entries per committed round (atomic batch), signature entries included.",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
	})
	m.roundBytes = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "gavel_sequencer_round_bytes", Help: "Bytes appended to the log per committed round.",
		Buckets: prometheus.ExponentialBuckets(256, 4, 10),
	})
	m.roundPhase = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gavel_sequencer_round_phase_seconds", Help: "Time of one committed round's append (send to ack) and apply phases.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"phase"})
	m.signatures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gavel_signature_entries_total", Help: "Signature entries this replica's sequencer committed.",
	})
	m.scriptFuel = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gavel_script_budget_used_steps", Help: "Deterministic script budget (steps) used per constitution, ballot or join policy call.",
		Buckets: prometheus.ExponentialBuckets(16, 4, 12),
	}, []string{"call"})
	m.scriptFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gavel_script_failures_total", Help: "Script calls that failed, by call and kind (budget, stack, safety_limit, threw, bad_result, other).",
	}, []string{"call", "kind"})
	m.writeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gavel_write_errors_total", Help: "Commands refused or failed by the write path (JetStream, storage, sequencer), by cause (the error code).",
	}, []string{"cause"})
	m.receipts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gavel_receipts_served_total", Help: "Receipts and transparent statements served, by route.",
	}, []string{"route"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gavel_http_requests_total", Help: "HTTP requests answered, by route pattern and status code.",
	}, []string{"route", "code"})
	m.reg.MustRegister(m.commitLatency, m.roundEntries, m.roundBytes, m.roundPhase, m.signatures,
		m.scriptFuel, m.scriptFailures, m.writeErrors, m.receipts, m.requests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveRound is sequencer.Config.OnRound.
func (m *Metrics) ObserveRound(r sequencer.RoundReport) {
	m.roundEntries.Observe(float64(r.Entries))
	m.roundBytes.Observe(float64(r.Bytes))
	m.roundPhase.WithLabelValues("append").Observe(r.Append.Seconds())
	m.roundPhase.WithLabelValues("apply").Observe(r.Apply.Seconds())
	m.signatures.Add(float64(r.Signatures))
}

// ObserveCall is a constitution.Observe function.
func (m *Metrics) ObserveCall(c constitution.CallReport) {
	m.scriptFuel.WithLabelValues(c.Call).Observe(float64(c.Fuel))
	if c.Code != "" {
		m.scriptFailures.WithLabelValues(c.Call, scriptFailureKind(c.Code)).Inc()
	}
}

// scriptFailureKind folds a script error code into a few kinds, so the
// label set stays small whatever codes the engine grows.
func scriptFailureKind(code string) string {
	switch code {
	case constitution.CodeScriptBudgetExceeded:
		return "budget"
	case constitution.CodeScriptStackOverflow:
		return "stack"
	case constitution.CodeScriptSafetyLimit:
		return "safety_limit"
	case constitution.CodeScriptThrew:
		return "threw"
	case constitution.CodeScriptBadResult:
		return "bad_result"
	default:
		return "other"
	}
}

// ObserveCommit records one submitted command: its latency, and for a
// refusal of the write path (Unavailable or Internal: storage, JetStream,
// a stopped sequencer) its cause. Refusals of the request itself
// (invalid, conflict) are answers, not write errors.
func (m *Metrics) ObserveCommit(kind engine.EntryKind, took time.Duration, err error) {
	outcome := "committed"
	if err != nil {
		outcome = "refused"
		switch e := engine.AsError(err); e.Kind {
		case engine.KindUnavailable, engine.KindInternal:
			outcome = "failed"
			m.writeErrors.WithLabelValues(e.Code).Inc()
		}
	}
	m.commitLatency.WithLabelValues(string(kind), outcome).Observe(took.Seconds())
}

// scrape is the collector of what is read at scrape time.
type scrape struct {
	h *HTTP
}

var (
	descRounds     = prometheus.NewDesc("gavel_sequencer_rounds_total", "Rounds (atomic batches) the sequencer committed.", nil, nil)
	descEntries    = prometheus.NewDesc("gavel_sequencer_entries_total", "Entries the sequencer committed.", nil, nil)
	descPhase      = prometheus.NewDesc("gavel_sequencer_phase_seconds_total", "Time the sequencer spent executing, appending (until the ack) and applying.", []string{"phase"}, nil)
	descQueued     = prometheus.NewDesc("gavel_sequencer_queue_depth", "Requests waiting in the sequencer's queue.", nil, nil)
	descQueueCap   = prometheus.NewDesc("gavel_sequencer_queue_capacity", "Requests the queue holds before the service pushes back (503 Busy).", nil, nil)
	descWritable   = prometheus.NewDesc("gavel_writable", "1 while the replica accepts writes, else 0.", nil, nil)
	descFault      = prometheus.NewDesc("gavel_write_fault", "1 for the code of the fault that stops writes now (StorageFull, SequencerStopped…).", []string{"code"}, nil)
	descSeqno      = prometheus.NewDesc("gavel_ledger_seqno", "Seqno of the last applied entry.", nil, nil)
	descSigned     = prometheus.NewDesc("gavel_ledger_last_signature_seqno", "Seqno of the last applied signature entry.", nil, nil)
	descVoids      = prometheus.NewDesc("gavel_ledger_void_entries", "Void (unauthenticated) messages found in the log.", nil, nil)
	descLag        = prometheus.NewDesc("gavel_projection_lag_entries", "Entries a read model is behind (state behind the log, others behind the state).", []string{"projection"}, nil)
	descView       = prometheus.NewDesc("gavel_view", "The view of the write path.", nil, nil)
	descLeader     = prometheus.NewDesc("gavel_leader", "1 for the node id holding the write path (the lease).", []string{"holder"}, nil)
	descNodes      = prometheus.NewDesc("gavel_nodes", "Nodes of the service by status and role.", []string{"status", "role"}, nil)
	descMapNodes   = prometheus.NewDesc("gavel_network_map_nodes", "NodeInfos in the network map.", nil, nil)
	descPending    = prometheus.NewDesc("gavel_network_parameters_update_pending", "1 while a network parameters update is advertised.", nil, nil)
	descAccepted   = prometheus.NewDesc("gavel_network_parameters_update_acceptances", "Nodes that accepted the pending update.", nil, nil)
	descNotYet     = prometheus.NewDesc("gavel_network_parameters_update_unaccepted_nodes", "Published nodes that have not accepted the pending update.", nil, nil)
	descDeadline   = prometheus.NewDesc("gavel_network_parameters_update_deadline_seconds", "Seconds until the pending update's deadline (negative once past).", nil, nil)
	descScrapeFail = prometheus.NewDesc("gavel_scrape_read_errors", "1 for each read model that could not be read during this scrape.", []string{"part"}, nil)
)

func (s scrape) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRounds, descEntries, descPhase, descQueued, descQueueCap, descWritable,
		descFault, descSeqno, descSigned, descVoids, descLag, descView, descLeader, descNodes, descMapNodes,
		descPending, descAccepted, descNotYet, descDeadline, descScrapeFail} {
		ch <- d
	}
}

func (s scrape) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	failed := func(part string) { gauge(descScrapeFail, 1, part) }
	if o := s.h.observed; o != nil {
		q := o.Sequencing()
		counter(descRounds, float64(q.Rounds))
		counter(descEntries, float64(q.Entries))
		counter(descPhase, q.Execute.Seconds(), "execute")
		counter(descPhase, q.Append.Seconds(), "append")
		counter(descPhase, q.Apply.Seconds(), "apply")
		gauge(descQueued, float64(q.Queued))
		gauge(descQueueCap, float64(q.QueueCapacity))
		gauge(descSeqno, float64(q.Seqno))
		gauge(descSigned, float64(q.LastSignature))
		gauge(descVoids, float64(q.Voids))
		if q.Fault != nil {
			gauge(descWritable, 0)
			gauge(descFault, 1, q.Fault.Code)
		} else {
			gauge(descWritable, 1)
		}
		holder, view := o.Leadership()
		gauge(descView, float64(view))
		gauge(descLeader, 1, holder)
		for name, lag := range o.ProjectionLag(ctx) {
			gauge(descLag, float64(lag), name)
		}
	}
	if list, _, err := s.h.svc.NodeList(ctx, "", "", projections.Page{}); err == nil {
		type key struct{ status, role string }
		count := map[key]int{}
		for _, n := range list {
			count[key{n.Status, n.Role}]++
		}
		for k, n := range count {
			gauge(descNodes, float64(n), k.status, k.role)
		}
	} else {
		failed("nodes")
	}
	nm, ok := s.h.svc.(NetworkMap)
	if !ok {
		return
	}
	payload, err := mapPayload(ctx, nm)
	if err != nil {
		failed("network_map")
		return
	}
	gauge(descMapNodes, float64(len(payload.NodeInfoHashes)))
	if u := payload.ParametersUpdate; u != nil {
		gauge(descPending, 1)
		if deadline, err := time.Parse(time.RFC3339, u.UpdateDeadline); err == nil {
			gauge(descDeadline, time.Until(deadline).Seconds())
		}
		if a, err := nm.Acceptances(ctx, ""); err == nil {
			gauge(descAccepted, float64(len(a.Accepted)))
			gauge(descNotYet, float64(len(a.Pending)))
		} else {
			failed("acceptances")
		}
	} else {
		gauge(descPending, 0)
	}
}

// mapPayload is the current network map's payload (its signature is the
// service's own; the read model made it).
func mapPayload(ctx context.Context, nm NetworkMap) (netmap.MapPayload, error) {
	var p netmap.MapPayload
	m, err := nm.SignedMap(ctx)
	if err != nil {
		return p, err
	}
	msg, err := cose.DecodeSign1(m.Body)
	if err != nil {
		return p, err
	}
	err = json.Unmarshal(msg.Payload, &p)
	return p, err
}

// getMetrics serves the Prometheus text format.
func (h *HTTP) getMetrics(w http.ResponseWriter, r *http.Request) {
	h.metricsHandler.ServeHTTP(w, r)
}

// countRequest records an answered request by route pattern and status.
func (m *Metrics) countRequest(pattern string, status int) {
	if pattern == "" {
		pattern = "none"
	}
	if status == 0 {
		status = http.StatusOK // net/http's answer to a handler that wrote nothing
	}
	m.requests.WithLabelValues(pattern, strconv.Itoa(status)).Inc()
}

// countReceipt records a served receipt or transparent statement.
func (m *Metrics) countReceipt(pattern string) { m.receipts.WithLabelValues(pattern).Inc() }

func (h *HTTP) metricsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /metrics", h.getMetrics)
}

// UseMetrics makes h serve and feed m (the one the engine's hooks feed);
// NewHTTP starts with a metrics set of its own. Call it before serving, and
// give each Metrics to one HTTP only.
func (h *HTTP) UseMetrics(m *Metrics) {
	h.metrics = m
	m.reg.MustRegister(scrape{h})
	h.metricsHandler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

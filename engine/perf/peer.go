package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/handlers"
)

// Peer is another durable append-only log that a user could pick instead
// of gavel, measured in the same run on the same machine so that the
// comparison is a ratio. The peers themselves live outside this module
// (bench/), so that gavel does not depend on them.
type Peer interface {
	// Name says what the peer is, with its version and settings.
	Name() string
	// Open starts an empty log in dir.
	Open(ctx context.Context, dir string) (PeerLog, error)
}

// PeerLog is an open peer log.
type PeerLog interface {
	// Append adds entry once it is durable on disk and returns its index.
	Append(ctx context.Context, entry []byte) (uint64, error)
	// Published is the size of the latest published checkpoint: entries
	// below it have the peer's equivalent of a receipt.
	Published(ctx context.Context) (uint64, error)
	Close() error
}

// PeerReport is a peer's result, measured as gavel's is.
type PeerReport struct {
	Name            string  `json:"name"`
	PerSec          float64 `json:"append_per_sec"` // closed loop at peak
	PeakLatency     Latency `json:"peak_latency"`
	HalfLoadPerSec  float64 `json:"half_load_offered_per_sec"`
	HalfLoadLatency Latency `json:"half_load_latency"`
	// ReceiptLag is the time from an append's answer to the first
	// published checkpoint that covers it, at half load.
	ReceiptLag Latency `json:"receipt_lag"`
	Errors     int64   `json:"errors"`
	// GavelVsPeer is gavel's peak rate over the peer's.
	GavelVsPeer float64 `json:"gavel_vs_peer"`
}

// verifyOnce is the adders' check: the statement's signature verified
// once with its leaf key (rekor-tiles' check per entry). gavel's own
// registration does more (did:x509 against the chain at iat).
func verifyOnce(raw []byte) error {
	st, err := cose.ParseStatement(raw)
	if err != nil {
		return err
	}
	if len(st.Chain) == 0 {
		return fmt.Errorf("statement has no x5chain")
	}
	return cose.VerifySignature(st.Alg, st.Chain[0].PublicKey, st.Protected, st.Payload, st.Signature)
}

// runPeer measures p as RunCommit measures gavel: the same statements
// verified once each, appended as entries of gavel's entry size, by the
// same number of clients, then an open loop at half of the peer's peak.
func runPeer(ctx context.Context, p Peer, cfg Config, statements [][]byte, entryBytes int) (*PeerReport, error) {
	dir := filepath.Join(cfg.Dir, "peer")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	log, err := p.Open(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", p.Name(), err)
	}
	defer log.Close()
	entries := make([][]byte, len(statements))
	for i, st := range statements {
		e := make([]byte, max(entryBytes, len(st)))
		copy(e, st)
		entries[i] = e
	}
	add := func(ctx context.Context, i int) (uint64, error) {
		if err := verifyOnce(statements[i%len(statements)]); err != nil {
			return 0, err
		}
		// Identical entries are deduplicated by some logs: make each one
		// distinct, as distinct statements are.
		e := slices.Clone(entries[i%len(entries)])
		copy(e[len(e)-8:], fmt.Sprintf("%08x", i))
		return log.Append(ctx, e)
	}

	rep := &PeerReport{Name: p.Name()}
	rep.PerSec, rep.PeakLatency, rep.Errors, err = closedLoopOf(ctx, p.Name(), cfg.Requests, cfg.Clients, func(i int) error {
		_, err := add(ctx, i)
		return err
	})
	if err != nil {
		return nil, err
	}

	rep.HalfLoadPerSec = rep.PerSec / 2
	lag := newLagTracker(func() (uint64, error) { return log.Published(ctx) })
	stop := lag.poll(ctx)
	offset := cfg.Requests
	lat, errs, err := openLoopOf(ctx, rep.HalfLoadPerSec, cfg.HalfLoad, func(i int) error {
		idx, err := add(ctx, offset+i)
		if err == nil {
			lag.answered(idx + 1)
		}
		return err
	})
	stop()
	if err != nil {
		return nil, err
	}
	rep.HalfLoadLatency, rep.Errors = lat, rep.Errors+errs
	rep.ReceiptLag = lag.summary()
	return rep, nil
}

// lagTracker measures how long after its answer an entry is covered by a
// published root: a poller records when the published size moves, and
// each answered entry is matched to the first move that covers it.
type lagTracker struct {
	published func() (uint64, error)
	mu        sync.Mutex
	moves     []lagMove // published size over time, increasing
	answers   []lagMove // (size needed, answered at)
	end       time.Time // when polling stopped
}

type lagMove struct {
	size uint64
	at   time.Time
}

func newLagTracker(published func() (uint64, error)) *lagTracker {
	return &lagTracker{published: published}
}

// poll samples the published size every millisecond until stopped; stop
// returns once every answered entry is covered (or after 10 s).
func (l *lagTracker) poll(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer func() {
			l.mu.Lock()
			l.end = time.Now()
			l.mu.Unlock()
			close(finished)
		}()
		var draining <-chan time.Time
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				done = nil
				draining = time.After(10 * time.Second)
			case <-draining:
				return
			case <-t.C:
			}
			size, err := l.published()
			if err != nil {
				continue
			}
			now := time.Now()
			l.mu.Lock()
			if n := len(l.moves); n == 0 || size > l.moves[n-1].size {
				l.moves = append(l.moves, lagMove{size, now})
			}
			covered := done == nil && l.coveredLocked()
			l.mu.Unlock()
			if covered {
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (l *lagTracker) answered(sizeNeeded uint64) {
	now := time.Now()
	l.mu.Lock()
	l.answers = append(l.answers, lagMove{sizeNeeded, now})
	l.mu.Unlock()
}

func (l *lagTracker) coveredLocked() bool {
	if len(l.moves) == 0 {
		return len(l.answers) == 0
	}
	top := l.moves[len(l.moves)-1].size
	for _, a := range l.answers {
		if a.size > top {
			return false
		}
	}
	return true
}

// summary is the lag distribution; an entry never covered counts as the
// time until the end of polling.
func (l *lagTracker) summary() Latency {
	l.mu.Lock()
	defer l.mu.Unlock()
	lags := make([]time.Duration, 0, len(l.answers))
	for _, a := range l.answers {
		i, _ := slices.BinarySearchFunc(l.moves, a.size, func(m lagMove, size uint64) int {
			switch {
			case m.size < size:
				return -1
			case m.size > size:
				return 1
			}
			return 0
		})
		lag := l.end.Sub(a.at) // never covered while polling
		if i < len(l.moves) {
			lag = l.moves[i].at.Sub(a.at)
		}
		lags = append(lags, max(lag, 0))
	}
	return summarise(lags)
}

// gavelReceiptLag measures gavel's receipt lag at half load: registrations
// at rate for d, each matched to the first signature entry covering it.
func gavelReceiptLag(ctx context.Context, r *replica.Replica, nc *nats.Conn, sts [][]byte, rate float64, d time.Duration) (Latency, Latency, int64, error) {
	lag := newLagTracker(func() (uint64, error) { return r.Store().Meta().LastSignature, nil })
	stop := lag.poll(ctx)
	lat, errs, err := openLoopOf(ctx, rate, d, func(i int) error {
		msg, err := nc.Request(handlers.SubjectStatement, sts[i%len(sts)], 30*time.Second)
		if err != nil {
			return err
		}
		if s := msg.Header.Get(handlers.StatusHeader); s != "201" {
			return fmt.Errorf("status %s: %s", s, msg.Data)
		}
		var res exec.RegistrationResult
		if err := json.Unmarshal(msg.Data, &res); err != nil {
			return err
		}
		tx, err := engine.ParseTxID(res.TxID)
		if err != nil {
			return err
		}
		// A signature at seqno s covers every entry below it.
		lag.answered(tx.Seqno + 1)
		return nil
	})
	stop()
	return lat, lag.summary(), errs, err
}

package perf

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/handlers"
	"github.com/gavelhq/gavel/projections"
)

// GovConfig sets a governance benchmark's size.
type GovConfig struct {
	Dir       string
	Proposals int // each gets two ballots: the second accepts it
	Clients   int
	Logger    *slog.Logger
	// Ballots, when set, is called right before the ballots are sent, and
	// what it returns right after they are answered (a CPU profile of
	// the ballots alone).
	Ballots func() (done func())
}

// DefaultGovConfig is what `gavel bench gov` runs.
func DefaultGovConfig(dir string) GovConfig {
	return GovConfig{Dir: dir, Proposals: 5000, Clients: 256}
}

// GovReport is the result of a governance benchmark.
type GovReport struct {
	Members         int     `json:"members"`
	ProposalsPerSec float64 `json:"proposals_per_sec"`
	BallotsPerSec   float64 `json:"ballots_per_sec"`
	BallotLatency   Latency `json:"ballot_latency"`
	VerifyCeiling   float64 `json:"es256_verifies_per_sec_all_cores"` // the mean of before and after
	// VerifyBefore and VerifyAfter are the ceiling measured right before
	// and right after the ballots: on a shared machine they differ.
	VerifyBefore    float64 `json:"es256_verifies_per_sec_before"`
	VerifyAfter     float64 `json:"es256_verifies_per_sec_after"`
	VsVerifyCeiling float64 `json:"ratio_vs_verify_ceiling"` // target ≥ 0.6
	Accepted        int     `json:"accepted"`
	BatchSize       float64 `json:"ballots_per_round"`
	// SequencerBusy is the share of the ballot run's wall time the
	// sequencer spent executing, appending (until the ack) and applying.
	SequencerBusy    SequencerShare `json:"sequencer_busy"`
	Errors           int64          `json:"errors"`
	ConstitutionHash string         `json:"constitution"`
	// ReadCacheHits is how many of the ballots' state reads the store's
	// read cache answered.
	ReadCacheHits uint64 `json:"read_cache_hits"`
}

// SequencerShare splits the sequencer's time.
type SequencerShare struct {
	Execute float64 `json:"execute"`
	Append  float64 `json:"append"`
	Apply   float64 `json:"apply"`
}

// RunGov measures ballots committed per second through NATS against the
// ES256 verification ceiling of the same machine.
func RunGov(ctx context.Context, cfg GovConfig) (*GovReport, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	members := make([]*govreq.Member, 3)
	initial := make([]gov.InitialMember, 3)
	for i := range members {
		certPEM, keyPEM, err := govreq.Keygen("ES256", fmt.Sprintf("bench%d", i))
		if err != nil {
			return nil, err
		}
		if members[i], err = govreq.LoadMember(certPEM, keyPEM); err != nil {
			return nil, err
		}
		initial[i] = gov.InitialMember{CertPEM: certPEM}
	}
	govCfg := gov.DefaultConfig()
	govCfg.MaxOpenProposals = cfg.Proposals + 1
	r, nc, stop, err := serve(ctx, replica.Config{DataDir: filepath.Join(cfg.Dir, "gavel"), Logger: cfg.Logger,
		Members: initial, Governance: govCfg})
	if err != nil {
		return nil, err
	}
	defer stop()
	rep := &GovReport{Members: len(members)}

	// Proposals, signed ahead, then submitted (timed separately).
	now := time.Now()
	props := make([][]byte, cfg.Proposals)
	for i := range props {
		body := fmt.Sprintf(`{"actions":[{"name":"set_node_join_policy","args":{"policy":"export function apply() { return true; } // %d"}}]}`, i)
		if props[i], err = members[0].Sign(govreq.MsgProposal, "", now, []byte(body)); err != nil {
			return nil, err
		}
	}
	rate, _, errs, err := requestLoop(ctx, nc, handlers.SubjectGovProposal, "200", props, len(props), cfg.Clients)
	if err != nil {
		return nil, err
	}
	rep.ProposalsPerSec, rep.Errors = rate, errs

	// Two ballots per proposal, by the two other members; the second
	// accepts it (2 of 3), so it also runs apply.
	yes, _ := json.Marshal(map[string]string{"ballot": "export function vote(proposal, proposerId) { return true; }"})
	ballots := make([][]byte, 0, 2*len(props))
	for _, m := range members[1:] {
		for _, p := range props {
			b, err := m.Sign(govreq.MsgBallot, govreq.ProposalID(p), now, yes)
			if err != nil {
				return nil, err
			}
			ballots = append(ballots, b)
		}
	}
	rep.VerifyBefore = VerifyCeiling(2 * time.Second)
	r0, e0 := r.Sequencer().Stats()
	t0 := r.Sequencer().Timing()
	hits0 := r.Store().ReadCache().Hits
	done := func() {}
	if cfg.Ballots != nil {
		done = cfg.Ballots()
	}
	start := time.Now()
	rate, lat, errs, err := requestLoop(ctx, nc, handlers.SubjectGovBallot, "200", ballots, len(ballots), cfg.Clients)
	wall := time.Since(start)
	done()
	if err != nil {
		return nil, err
	}
	rep.ReadCacheHits = r.Store().ReadCache().Hits - hits0
	r1, e1 := r.Sequencer().Stats()
	t1 := r.Sequencer().Timing()
	if r1 > r0 {
		rep.BatchSize = float64(e1-e0) / float64(r1-r0)
	}
	rep.SequencerBusy = SequencerShare{
		Execute: (t1.Execute - t0.Execute).Seconds() / wall.Seconds(),
		Append:  (t1.Append - t0.Append).Seconds() / wall.Seconds(),
		Apply:   (t1.Apply - t0.Apply).Seconds() / wall.Seconds(),
	}
	rep.BallotsPerSec, rep.BallotLatency, rep.Errors = rate, lat, rep.Errors+errs
	accepted, _, err := r.Proposals(ctx, gov.StateAccepted, projections.Page{})
	if err != nil {
		return nil, err
	}
	rep.Accepted = len(accepted)
	src, _ := r.ConstitutionSource(ctx)
	rep.ConstitutionHash = fmt.Sprintf("%x", sha256.Sum256([]byte(src)))[:16]

	rep.VerifyAfter = VerifyCeiling(2 * time.Second)
	rep.VerifyCeiling = (rep.VerifyBefore + rep.VerifyAfter) / 2
	rep.VsVerifyCeiling = rep.BallotsPerSec / rep.VerifyCeiling
	return rep, nil
}

// VerifyCeiling is how many ES256 signatures all cores verify per second.
func VerifyCeiling(d time.Duration) float64 {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest := sha256.Sum256([]byte("gavel"))
	sig, _ := ecdsa.SignASN1(rand.Reader, key, digest[:])
	var n atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}

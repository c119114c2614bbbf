package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
)

// The leader lease is one key of a JetStream KV bucket. It is taken with
// Create, renewed by a compare-and-swap Update, and handed to a named
// successor with one Update. The bucket's TTL ends a crashed holder's
// term; a per-key TTL would be dropped by the first Update.
//
// The lease only says who should try to sequence. Safety rests on the
// ledger: every append carries Nats-Expected-Last-Sequence, and the new
// primary's first entry (a view-change signature) makes a stale primary's
// next batch fail, after which it sees the newer view and steps down.
const leaseKey = "primary"

// Lease defaults: renew about every second, expire after three.
const (
	DefaultLeaseTTL   = 3 * time.Second
	DefaultLeaseRenew = time.Second
	DefaultLeasePoll  = 50 * time.Millisecond
	// leaseMargin is how long before its own TTL a holder stops
	// sequencing without a renewal: room for clock skew and pauses.
	leaseMargin = 500 * time.Millisecond
)

// LeaseConfig tunes the leader lease; a zero field takes its default.
type LeaseConfig struct {
	TTL   time.Duration // the bucket's TTL: a silent holder's lease ends after it
	Renew time.Duration // how often the holder renews
	Poll  time.Duration // how often a follower looks at the lease
	Knobs *LeaseKnobs   // fault injection for tests; nil in production
}

// LeaseKnobs inject faults into the lease.
type LeaseKnobs struct {
	// Freeze, while set, makes the holder neither renew nor notice that
	// its lease has run out, as a process paused by the OS would: it
	// keeps sequencing, and the ledger's fence must refuse it.
	Freeze atomic.Bool
	// DropAnswers, while set, makes the primary run forwarded writes but
	// never answer them, as a primary that dies between the commit and
	// its answer: the follower's attempt is in doubt.
	DropAnswers atomic.Bool
}

func (c LeaseConfig) withDefaults() LeaseConfig {
	if c.TTL <= 0 {
		c.TTL = DefaultLeaseTTL
	}
	if c.Renew <= 0 {
		c.Renew = DefaultLeaseRenew
	}
	if c.Poll <= 0 {
		c.Poll = DefaultLeasePoll
	}
	return c
}

// LeaseValue is what the lease key holds: the primary's node id and the
// NATS server it runs on (where the ledger's stream leader belongs).
type LeaseValue struct {
	NodeID string `json:"node_id"`
	Server string `json:"server,omitempty"`
}

// ErrLeaseLost is a renewal or handover refused because the lease is no
// longer the holder's (another replica wrote it, or it expired).
var ErrLeaseLost = errors.New("replica: the leader lease is held by another replica")

// lease is the bucket as one replica uses it.
type lease struct {
	kv  jetstream.KeyValue
	cfg LeaseConfig
}

// openLease creates (or updates) the bucket.
func openLease(ctx context.Context, js jetstream.JetStream, replicas int, cfg LeaseConfig) (*lease, error) {
	return openPlacedLease(ctx, js, replicas, nil, cfg)
}

// openPlacedLease is openLease with the bucket placed by tags (a
// clustered replica's: where the controller later scales it).
func openPlacedLease(ctx context.Context, js jetstream.JetStream, replicas int, tags []string, cfg LeaseConfig) (*lease, error) {
	cfg = cfg.withDefaults()
	kcfg := jetstream.KeyValueConfig{
		Bucket: natslog.LeaseBucket, Description: "gavel's leader lease", History: 1,
		TTL: cfg.TTL, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	}
	if len(tags) > 0 {
		kcfg.Placement = &jetstream.Placement{Tags: tags}
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, kcfg)
	if err != nil {
		return nil, engine.Wrap(engine.KindUnavailable, "StreamSetupFailed", err, "cannot create or update the lease bucket %s", natslog.LeaseBucket)
	}
	return &lease{kv: kv, cfg: cfg}, nil
}

// openExistingLease opens the bucket as it is (its replicas and placement
// are the replication controller's).
func openExistingLease(ctx context.Context, js jetstream.JetStream, cfg LeaseConfig) (*lease, error) {
	kv, err := js.KeyValue(ctx, natslog.LeaseBucket)
	if err != nil {
		return nil, engine.Wrap(engine.KindUnavailable, "StreamSetupFailed", err, "cannot open the lease bucket %s", natslog.LeaseBucket)
	}
	return &lease{kv: kv, cfg: cfg.withDefaults()}, nil
}

// EnsureLeaseBucket creates the lease bucket, or updates it to replicas
// (the lease moves with the ledger: raise both when the ledger goes R3).
func EnsureLeaseBucket(ctx context.Context, js jetstream.JetStream, replicas int, cfg LeaseConfig) error {
	_, err := openLease(ctx, js, replicas, cfg)
	return err
}

// read is the lease now: its value and revision, or ok false when nobody
// holds it.
func (l *lease) read(ctx context.Context) (v LeaseValue, rev uint64, ok bool, err error) {
	e, err := l.kv.Get(ctx, leaseKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return v, 0, false, nil
	}
	if err != nil {
		return v, 0, false, err
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		// Not gavel's: nobody can renew it, and it expires with the TTL.
		return v, e.Revision(), true, fmt.Errorf("lease value: %w", err)
	}
	return v, e.Revision(), true, nil
}

// take creates the lease for v; ErrLeaseLost when someone holds it.
func (l *lease) take(ctx context.Context, v LeaseValue) (uint64, error) {
	b, _ := json.Marshal(v)
	rev, err := l.kv.Create(ctx, leaseKey, b)
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, ErrLeaseLost
	}
	return rev, err
}

// write sets the lease to v if its revision is still rev: a renewal when
// v is the holder, a handover when v is its successor.
func (l *lease) write(ctx context.Context, v LeaseValue, rev uint64) (uint64, error) {
	b, _ := json.Marshal(v)
	next, err := l.kv.Update(ctx, leaseKey, b, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return 0, ErrLeaseLost
	}
	return next, err
}

// release gives the lease up at once (the holder stopped for a reason of
// its own), so that the others need not wait for the TTL.
func (l *lease) release(ctx context.Context, rev uint64) error {
	return l.kv.Delete(ctx, leaseKey, jetstream.LastRevision(rev))
}

// held is a lease this replica holds.
type held struct {
	rev   uint64    // the revision of its last write
	view  uint64    // the view it sequences in: the revision that made it the holder
	until time.Time // when it stops sequencing without another renewal (monotonic)
}

// renewed records a renewal sent at sent and written at rev.
func (h *held) renewed(rev uint64, sent time.Time, ttl time.Duration) {
	h.rev, h.until = rev, sent.Add(ttl-leaseMargin)
}

package natslog

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
)

// Streams and subjects (DESIGN.md "NATS subjects and streams").
const (
	LedgerStream   = "GAVEL_LEDGER"
	FeedsStream    = "GAVEL_FEEDS"
	LedgerSubjects = "gavel.ledger.>"
	FeedSubjects   = "gavel.feed.>"
	SubmitSubjects = "gavel.submit.>"
	// ReplicaSubjects carry what replicas say to each other (forwarded
	// writes); only the replica user publishes or subscribes there.
	ReplicaSubjects = "gavel.replica.>"
	// LeaseBucket is the JetStream KV bucket of the leader lease.
	LeaseBucket = "GAVEL_LEASE"
	leaseStream = "KV_" + LeaseBucket

	ledgerPrefix = "gavel.ledger."
	// maxKindLen bounds the entry kind in a ledger subject.
	maxKindLen = 32
)

// LedgerSubject is the subject of a ledger entry of the given kind, a short
// lowercase word such as "statement", "signature", "genesis" or "gov".
func LedgerSubject(kind string) string { return ledgerPrefix + kind }

// KindOfSubject returns the entry kind of a ledger subject, and whether the
// subject is one: "gavel.ledger." then [a-z][a-z0-9_]* of at most 32 bytes.
func KindOfSubject(subject string) (string, bool) {
	kind, ok := strings.CutPrefix(subject, ledgerPrefix)
	if !ok || kind == "" || len(kind) > maxKindLen || kind[0] < 'a' || kind[0] > 'z' {
		return "", false
	}
	for i := 1; i < len(kind); i++ {
		c := kind[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return "", false
		}
	}
	return kind, true
}

// LedgerStreamConfig is GAVEL_LEDGER: every entry kept forever, in order,
// and never deleted, purged or dropped to make room (DiscardNew).
func LedgerStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               LedgerStream,
		Subjects:           []string{LedgerSubjects},
		Retention:          jetstream.LimitsPolicy,
		MaxMsgs:            -1,
		MaxBytes:           -1,
		MaxMsgsPerSubject:  -1,
		Discard:            jetstream.DiscardNew,
		Storage:            jetstream.FileStorage,
		Replicas:           replicas,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		// gavel does its own idempotency; this is the server's minimum.
		Duplicates:     100 * time.Millisecond,
		MaxConsumers:   MaxLedgerConsumers,
		ConsumerLimits: jetstream.StreamConsumerLimits{InactiveThreshold: ConsumerInactiveThreshold},
	}
}

// FeedsStreamConfig is GAVEL_FEEDS: the last value per subject.
func FeedsStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              FeedsStream,
		Subjects:          []string{FeedSubjects},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.FileStorage,
		Replicas:          replicas,
		AllowDirect:       true,
		// Node feeds change by the thousand at a flag day: one write each.
		AllowAtomicPublish: true,
		MaxConsumers:       MaxFeedConsumers,
		ConsumerLimits:     jetstream.StreamConsumerLimits{InactiveThreshold: ConsumerInactiveThreshold},
	}
}

// EnsureStreams creates both streams, or updates them to gavel's config,
// then checks the ledger's safety settings took. Safe to call on every start.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, replicas int) error {
	return EnsureStreamsPlaced(ctx, js, replicas, nil)
}

// EnsureStreamsPlaced is EnsureStreams with the streams placed on servers
// that carry all of tags (none: anywhere).
func EnsureStreamsPlaced(ctx context.Context, js jetstream.JetStream, replicas int, tags []string) error {
	if replicas < 1 {
		replicas = 1
	}
	for _, cfg := range []jetstream.StreamConfig{LedgerStreamConfig(replicas), FeedsStreamConfig(replicas)} {
		if len(tags) > 0 {
			cfg.Placement = &jetstream.Placement{Tags: tags}
		}
		if err := dropUnboundedConsumers(ctx, js, cfg.Name); err != nil {
			return err
		}
		stream, err := js.CreateOrUpdateStream(ctx, cfg)
		if err != nil {
			return engine.Wrap(engine.KindUnavailable, "StreamSetupFailed", err, "cannot create or update stream %s", cfg.Name)
		}
		got := stream.CachedInfo().Config
		if got.Storage != cfg.Storage || got.Replicas != cfg.Replicas || got.DenyDelete != cfg.DenyDelete ||
			got.DenyPurge != cfg.DenyPurge || got.AllowAtomicPublish != cfg.AllowAtomicPublish ||
			got.MaxMsgsPerSubject != cfg.MaxMsgsPerSubject || got.Discard != cfg.Discard ||
			got.MaxConsumers != cfg.MaxConsumers || got.ConsumerLimits != cfg.ConsumerLimits {
			return engine.Errorf(engine.KindInternal, "StreamMisconfigured", "stream %s does not have gavel's configuration", cfg.Name)
		}
	}
	return nil
}

// dropUnboundedConsumers deletes the consumers of stream that the consumer
// limits would refuse today: durables without an inactive threshold or
// with a longer one, as clients could create before the limits existed.
// gavel itself keeps no consumers, and left in place they would count
// against MaxConsumers forever (and make the stream update fail).
func dropUnboundedConsumers(ctx context.Context, js jetstream.JetStream, name string) error {
	stream, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return engine.Wrap(engine.KindUnavailable, "StreamSetupFailed", err, "cannot read stream %s", name)
	}
	var unbounded []string
	list := stream.ListConsumers(ctx)
	for info := range list.Info() {
		if t := info.Config.InactiveThreshold; t <= 0 || t > ConsumerInactiveThreshold {
			unbounded = append(unbounded, info.Name)
		}
	}
	// A stream with a replica on a dead server (a replica lost with its
	// folder, not yet retired) cannot list every consumer: the listed ones
	// are dropped, the rest wait for a later start. It must not keep a
	// replica from opening; a stream update that needed them refuses
	// loudly on its own.
	_ = list.Err()
	for _, c := range unbounded {
		if err := stream.DeleteConsumer(ctx, c); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return engine.Wrap(engine.KindUnavailable, "StreamSetupFailed", err, "cannot delete consumer %s of %s", c, name)
		}
	}
	return nil
}

package replica_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/natslog/natstest"
	"github.com/gavelhq/gavel/engine/replica"
)

// A replica with the roles runs on a NATS cluster it did not start, every
// role as the one user of a credentials file: it takes the lease of the
// empty ledger, writes genesis on R3 streams there, sequences a statement
// and reads it back; its NATS is the cluster's URL.
func TestReplicaOnExternalCluster(t *testing.T) {
	x := natstest.StartExternal(t, 3, true)
	ctx, cancel := context.WithTimeout(context.Background(), natstest.ReadyTimeout)
	defer cancel()
	r, err := replica.Open(ctx, replica.Config{DataDir: t.TempDir(), External: &replica.ExternalNATS{URL: x.URL, Creds: x.Creds},
		StreamReplicas: 3, Logger: testLogger(), Lease: replica.LeaseConfig{TTL: testLeaseTTL}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.NATSURL() != x.URL || r.ClientCredsFile(natslog.UserMember) != "" {
		t.Fatalf("NATS %q, client creds %q", r.NATSURL(), r.ClientCredsFile(natslog.UserMember))
	}
	waitFor(t, r.IsPrimary)
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	st, err := iss.Sign("external", "text/plain", []byte("on someone else's NATS"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.RegisterStatement(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := engine.ParseTxID(txidOf(t, out))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WaitApplied(ctx, tx); err != nil {
		t.Fatal(err)
	}

	// The ledger is on the operator's servers, three copies.
	auth, err := natslog.ConnectOptions(x.Creds)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(x.URL, auth)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, natslog.LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	if info := s.CachedInfo(); info.Config.Replicas != 3 || info.State.LastSeq < tx.Seqno {
		t.Fatalf("ledger on the external cluster: %d replicas, last %d, want ≥ %d", info.Config.Replicas, info.State.LastSeq, tx.Seqno)
	}
}

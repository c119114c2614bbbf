package replica_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/natslog/natstest"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/projections"
)

// testLeaseTTL keeps crash takeovers short; renewals stay at a second.
const testLeaseTTL = 2 * time.Second

// trio is three replicas of one service, each on its own server of a
// three-server JetStream cluster, with R3 streams.
type trio struct {
	t    *testing.T
	c    *natstest.Cluster
	cfgs []replica.Config
	reps []*replica.Replica
	ids  []string // node ids
	// trusted is how many of the replicas genesis trusts (the first ones).
	trusted int
	iss     *issuer.Issuer
}

// startTrio opens replica 0 first (it takes the lease of the empty ledger
// and writes genesis, trusting all three node keys), then the others.
func startTrio(t *testing.T, opts ...func(*replica.Config)) *trio {
	t.Helper()
	return startTrioTrusting(t, 3, opts...)
}

// startTrioTrusting is startTrio with only the first trusted replicas'
// node keys Trusted at genesis; the others follow, and may never lead.
func startTrioTrusting(t *testing.T, trusted int, opts ...func(*replica.Config)) *trio {
	t.Helper()
	c := natstest.Start(t, 3)
	tr := newTrio(t, c.Servers, trusted, opts...)
	tr.c = c
	return tr
}

// newTrio opens three replicas of one service on servers, three servers
// of one cluster (startTrioTrusting).
func newTrio(t *testing.T, servers []*natslog.Embedded, trusted int, opts ...func(*replica.Config)) *trio {
	t.Helper()
	now := time.Now()
	tr := &trio{t: t, trusted: trusted}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	id, err := replica.LoadOrCreateIdentity(dirs[0], now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replica.CreateMapIdentity(dirs[0], id, now); err != nil {
		t.Fatal(err)
	}
	var records []engine.NodeRecord
	for i, d := range dirs {
		if i > 0 {
			if err := replica.CopyServiceIdentity(dirs[0], d); err != nil {
				t.Fatal(err)
			}
		}
		n, err := replica.LoadOrCreateNodeIdentity(d, now)
		if err != nil {
			t.Fatal(err)
		}
		tr.ids = append(tr.ids, n.ID)
		records = append(records, n.Record())
	}
	for i, d := range dirs {
		cfg := replica.Config{DataDir: d, NATS: servers[i], StreamReplicas: 3, Logger: testLogger().With("replica", i),
			Lease: replica.LeaseConfig{TTL: testLeaseTTL, Knobs: &replica.LeaseKnobs{}}}
		cfg.Netmap.Nodes = records[1:tr.trusted]
		cfg.Sequencer.SignInterval = 20 * time.Millisecond
		for _, o := range opts {
			o(&cfg)
		}
		tr.cfgs = append(tr.cfgs, cfg)
	}
	tr.reps = make([]*replica.Replica, 3)
	for i := range dirs {
		tr.open(i)
	}
	if tr.iss, err = issuer.New("ES256", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	return tr
}

func (tr *trio) open(i int) {
	tr.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), natstest.ReadyTimeout)
	defer cancel()
	r, err := replica.Open(ctx, tr.cfgs[i])
	if err != nil {
		tr.t.Fatalf("open replica %d: %v", i, err)
	}
	tr.reps[i] = r
	tr.t.Cleanup(func() { r.Close() })
}

// primary waits until exactly one open replica is the primary and every
// open replica names it, and returns its index.
func (tr *trio) primary(exclude ...int) int {
	tr.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		p, n := -1, 0
		for i, r := range tr.reps {
			if r != nil && !contains(exclude, i) && r.IsPrimary() {
				p, n = i, n+1
			}
		}
		agreed := n == 1
		for i, r := range tr.reps {
			if agreed && r != nil && !contains(exclude, i) && r.PrimaryID() != tr.ids[p] {
				agreed = false
			}
		}
		if agreed {
			return p
		}
		time.Sleep(10 * time.Millisecond)
	}
	tr.t.Fatal("no single primary that every replica names")
	return -1
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// register signs a fresh statement and registers it through replica i.
func (tr *trio) register(ctx context.Context, i int, name string) (engine.TxID, error) {
	st, err := tr.iss.Sign(name, "text/plain", []byte(name), time.Now())
	if err != nil {
		tr.t.Fatal(err)
	}
	out, err := tr.reps[i].RegisterStatement(ctx, st)
	if err != nil {
		return engine.TxID{}, err
	}
	return engine.ParseTxID(txidOf(tr.t, out))
}

// converged waits until every open replica has applied the same seqno
// (the highest one), then checks their Merkle roots and whole pebble
// states are equal, and returns that seqno.
func (tr *trio) converged(exclude ...int) uint64 {
	tr.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var top uint64
	for i, r := range tr.reps {
		if r != nil && !contains(exclude, i) {
			top = max(top, r.Store().Meta().Seqno)
		}
	}
	var root, digest engine.Digest
	first := true
	for i, r := range tr.reps {
		if r == nil || contains(exclude, i) {
			continue
		}
		if err := r.WaitApplied(ctx, engine.TxID{Seqno: top}); err != nil {
			tr.t.Fatalf("replica %d: %v", i, err)
		}
		st := r.Store()
		// A signature may land after top: compare at top, and the whole
		// state once everyone is quiet at the same seqno.
		rt, err := st.RootAt(top)
		if err != nil {
			tr.t.Fatal(err)
		}
		if first {
			root = rt
		} else if rt != root {
			tr.t.Fatalf("replica %d: root at %d is %x, another replica's %x", i, top, rt, root)
		}
		first = false
	}
	// Quiet: the primary signs its tail within SignInterval, then nothing.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var seqs []uint64
		for i, r := range tr.reps {
			if r != nil && !contains(exclude, i) {
				seqs = append(seqs, r.Store().Meta().Seqno)
			}
		}
		same := true
		for _, s := range seqs {
			same = same && s == seqs[0]
		}
		if same {
			first = true
			for i, r := range tr.reps {
				if r == nil || contains(exclude, i) {
					continue
				}
				d, err := r.Store().Digest()
				if err != nil {
					tr.t.Fatal(err)
				}
				if first {
					digest = d
				} else if d != digest && r.Store().Meta().Seqno == seqs[0] {
					tr.t.Fatalf("replica %d: pebble state %x differs from another replica's %x at seqno %d", i, d, digest, seqs[0])
				}
				first = false
			}
			return seqs[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	tr.t.Fatal("the replicas did not settle on one seqno")
	return 0
}

// checkLedger checks every acknowledged statement is in every open
// replica's state exactly once, at its txid.
func (tr *trio) checkLedger(acked map[string]engine.TxID, exclude ...int) {
	tr.t.Helper()
	for i, r := range tr.reps {
		if r == nil || contains(exclude, i) {
			continue
		}
		st := r.Store()
		seen := map[engine.Digest]int{}
		for s := uint64(1); s <= st.Meta().Seqno; s++ {
			rec, ok, err := st.Leaf(s)
			if err != nil || !ok {
				tr.t.Fatalf("replica %d: leaf %d: %v", i, s, err)
			}
			if rec.Kind == engine.KindStatement {
				seen[rec.ClaimsDigest]++
			}
		}
		for name, tx := range acked {
			rec, ok, err := st.Leaf(tx.Seqno)
			if err != nil || !ok || rec.View != tx.View || rec.Kind != engine.KindStatement {
				tr.t.Fatalf("replica %d: acknowledged %s at %s is not there (%v)", i, name, tx, err)
			}
			if n := seen[rec.ClaimsDigest]; n != 1 {
				tr.t.Fatalf("replica %d: %s is in the ledger %d times", i, name, n)
			}
		}
	}
}

// Three replicas: writes through any of them commit once, through the
// primary; every replica folds the same ledger into the same root and the
// same pebble state; every one names the same primary.
func TestReplicasFollowAndForward(t *testing.T) {
	tr := startTrio(t)
	p := tr.primary()
	if p != 0 {
		t.Fatalf("replica %d leads; the first one opened should", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	acked := map[string]engine.TxID{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range tr.reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 20 {
				name := fmt.Sprintf("via-%d/%d", i, k)
				tx, err := tr.register(ctx, i, name)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				// A follower answers once it has applied the write.
				if got := tr.reps[i].Store().Meta().Seqno; got < tx.Seqno {
					t.Errorf("%s answered at %s by a replica at seqno %d", name, tx, got)
				}
				mu.Lock()
				acked[name] = tx
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	top := tr.converged()
	tr.checkLedger(acked)
	t.Logf("%d statements through 3 replicas; all at seqno %d with equal roots and states", len(acked), top)
	for i, r := range tr.reps {
		list, _, err := r.NodeList(ctx, "", "", projections.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var primaries []string
		for _, n := range list {
			if n.Primary {
				primaries = append(primaries, n.NodeID)
			}
		}
		if len(primaries) != 1 || primaries[0] != tr.ids[p] {
			t.Fatalf("replica %d lists primaries %v, want [%s]", i, primaries, tr.ids[p])
		}
		info, err := r.Network(ctx)
		if err != nil || info.PrimaryID != tr.ids[p] {
			t.Fatalf("replica %d: /node/network names %q (%v)", i, info.PrimaryID, err)
		}
	}
}

// Followers check every entry's authentication before folding it: a
// message no Trusted service node signed (garbage, or an entry signed by a
// stranger's key claiming a member) is a void entry on every replica, the
// same leaf everywhere, and never applied; the replicas stay equal.
func TestFollowersFoldForeignMessagesAsVoid(t *testing.T) {
	tr := startTrio(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := tr.primary()
	acked := map[string]engine.TxID{}
	tx, err := tr.register(ctx, (p+1)%3, "before")
	if err != nil {
		t.Fatal(err)
	}
	acked["before"] = tx
	// Once the signature covering it is in, the primary writes nothing
	// until asked: the foreign messages below follow each other.
	for {
		if _, err := tr.reps[p].Receipt(ctx, tx); err == nil {
			break
		} else if engine.KindOf(err) != engine.KindPending {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	js, err := jetstream.New(tr.reps[p].SequencerConn())
	if err != nil {
		t.Fatal(err)
	}
	var voids []uint64
	ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: "gavel.ledger.statement", Data: []byte("garbage")})
	if err != nil {
		t.Fatal(err)
	}
	voids = append(voids, ack.Sequence)
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	stranger := engine.NewNodeSigner(strangerKey)
	forged := &engine.Entry{Kind: engine.KindGovProposal, View: tx.View, Seqno: ack.Sequence + 1, TimeMillis: time.Now().UnixMilli(),
		Writes: engine.WriteSet{{Table: constitution.TableMembers, Key: "intruder", Value: []byte(`{"status":"Active","cert":""}`)}}}
	forged.Seal()
	data, err := forged.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ack, err = js.PublishMsg(ctx, &nats.Msg{Subject: forged.Subject(), Data: data, Header: nats.Header{
		engine.HeaderNode: {stranger.ID()}, engine.HeaderAuth: {stranger.Sign(forged.Seqno, forged.Subject(), data)}}},
		jetstream.WithExpectLastSequence(ack.Sequence))
	if err != nil {
		t.Fatal(err)
	}
	voids = append(voids, ack.Sequence)
	// The primary folds them at its next round, the followers as they come.
	for k := range 3 {
		name := fmt.Sprintf("after/%d", k)
		tx, err := tr.register(ctx, k, name)
		if err != nil {
			t.Fatal(err)
		}
		acked[name] = tx
	}
	tr.converged()
	tr.checkLedger(acked)
	for i, r := range tr.reps {
		st := r.Store()
		for _, s := range voids {
			rec, ok, err := st.Leaf(s)
			if err != nil || !ok || rec.Kind != engine.KindVoid {
				t.Fatalf("replica %d: entry %d is %v (%v), not void", i, s, rec.Kind, err)
			}
		}
		if _, ok, _ := st.Get(constitution.TableMembers, "intruder"); ok {
			t.Fatalf("replica %d applied the forged member", i)
		}
		if n, _ := r.Voids(); n != uint64(len(voids)) {
			t.Fatalf("replica %d counts %d voids, want %d", i, n, len(voids))
		}
	}
}

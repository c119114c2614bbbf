package handlers_test

import (
	"github.com/nats-io/nats.go"

	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/audit"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/engine/receipt"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/handlers"
)

type mapNode struct {
	key  ed25519.PrivateKey
	id   string
	name string
}

func newMapNode(t testing.TB, name string) *mapNode {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &mapNode{key: key, id: engine.NodeID(key.Public().(ed25519.PublicKey)), name: name}
}

func (n *mapNode) record(status string) engine.NodeRecord {
	der, _ := x509.MarshalPKIXPublicKey(n.key.Public())
	return engine.NodeRecord{NodeID: n.id, Status: status, Role: "participant",
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
}

func (n *mapNode) info(t testing.TB, serial int64, addr string) []byte {
	b, err := netmap.SignNodeInfo(n.key, netmap.NodeInfo{Addresses: []string{addr}, LegalIdentities: []string{n.name},
		PlatformVersion: 4, Serial: serial})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (n *mapNode) ack(t testing.TB, hash string) []byte {
	b, err := netmap.SignAck(n.key, hash)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hashOf(t testing.TB, signed []byte) string {
	p, err := netmap.ParseNodeInfo(signed, netmap.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return p.Hash
}

func wantCode(t testing.TB, what string, err error, code string) {
	t.Helper()
	if got := engine.AsError(err).Code; err == nil || got != code {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
}

// TestNetworkMapEndToEnd runs the network map on a real replica over HTTP
// and NATS: NodeInfo publish with Corda's rules, the signed map with its
// ETag, a parameters update voted by members and advertised on the map and
// the feed, acknowledgements, the flag day at the deadline with a
// non-acceptor leaving the map, a receipt of the flag-day entry, a
// cancelled update, and the auditor's replay re-deriving all of it.
func TestNetworkMapEndToEnd(t *testing.T) {
	ctx := context.Background()
	var initial []gov.InitialMember
	var members []*govreq.Member
	for i := range 3 {
		m, certPEM := newMember(t, "ES256", fmt.Sprintf("m%d", i))
		members = append(members, m)
		initial = append(initial, gov.InitialMember{CertPEM: certPEM})
	}
	alice, bob, carol := newMapNode(t, "O=Alice,L=London,C=GB"), newMapNode(t, "O=Bob,L=Paris,C=FR"), newMapNode(t, "O=Carol,L=Rome,C=IT")
	pending, stranger := newMapNode(t, "O=Pending,L=Oslo,C=NO"), newMapNode(t, "O=Stranger,L=Bern,C=CH")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := replica.Open(ctx, replica.Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", Sequencer: fastSignatures(),
		Logger: logger, Members: initial, Netmap: replica.NetmapConfig{
			Nodes: []engine.NodeRecord{alice.record("Trusted"), bob.record("Trusted"), carol.record("Trusted"), pending.record("Pending")},
			Tick:  10 * time.Millisecond, MaxAge: 30 * time.Second,
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	srv := httptest.NewServer(handlers.NewHTTP(r, handlers.DefaultLimits(), logger))
	t.Cleanup(srv.Close)
	ncfg := handlers.DefaultNATSConfig(16, handlers.DefaultLimits())
	ncfg.HasInterest = r.HasInterest
	nh, err := handlers.ServeNATS(r.HandlerConn(), r, handlers.DefaultLimits(), ncfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Stop)
	c := client.New(srv.URL)
	const yes = "export function vote() { return true; }"
	// accept proposes body and has two of the three members vote for it.
	accept := func(body string) *client.Proposal {
		t.Helper()
		p, _, err := c.Propose(ctx, members[0], []byte(body))
		for _, m := range members[:2] {
			if err == nil {
				p, _, err = c.Vote(ctx, m, p.ProposalID, yes)
			}
		}
		if err != nil || p.State != gov.StateAccepted {
			t.Fatalf("proposal: %+v %v", p, err)
		}
		return p
	}

	// Publish: a higher serial replaces, the same NodeInfo again changes
	// nothing, an equal serial with another payload and a lower serial are
	// refused, and so are a taken legal name and nodes that are not Trusted.
	a1 := alice.info(t, 1, "alice.example:10001")
	first, err := c.PublishNodeInfo(ctx, a1)
	if err != nil {
		t.Fatal(err)
	}
	// Once the tail is signed the log is quiet: no signature entry can
	// land between the two reads below.
	waitFor(t, "a signed tail", func() bool { m := r.Store().Meta(); return m.Seqno == m.LastSignature })
	before := r.Store().Meta().Seqno
	again, err := c.PublishNodeInfo(ctx, a1)
	if err != nil || again != first {
		t.Fatalf("re-publish: %+v %v, first %+v", again, err, first)
	}
	if r.Store().Meta().Seqno != before {
		t.Fatal("an identical re-publish wrote an entry")
	}
	_, err = c.PublishNodeInfo(ctx, alice.info(t, 1, "alice.example:10009"))
	wantCode(t, "equal serial", err, netmap.CodeNodeInfoSerialConflict)
	a2 := alice.info(t, 2, "alice.example:10002")
	if _, err := c.PublishNodeInfo(ctx, a2); err != nil {
		t.Fatal(err)
	}
	_, err = c.PublishNodeInfo(ctx, a1)
	wantCode(t, "lower serial", err, netmap.CodeNodeInfoSerialTooLow)
	thief, _ := netmap.SignNodeInfo(bob.key, netmap.NodeInfo{Addresses: []string{"bob:1"}, LegalIdentities: []string{alice.name}, PlatformVersion: 4, Serial: 1})
	_, err = c.PublishNodeInfo(ctx, thief)
	wantCode(t, "taken name", err, netmap.CodeLegalNameTaken)
	_, err = c.PublishNodeInfo(ctx, pending.info(t, 1, "p:1"))
	wantCode(t, "pending node", err, netmap.CodeNodeNotTrusted)
	_, err = c.PublishNodeInfo(ctx, stranger.info(t, 1, "s:1"))
	wantCode(t, "unknown node", err, netmap.CodeUnknownNode)
	_, err = c.PublishNodeInfo(ctx, []byte("not cose"))
	wantCode(t, "garbage", err, netmap.CodeInvalidNodeInfo)
	b1, c1 := bob.info(t, 1, "bob.example:1"), carol.info(t, 1, "carol.example:1")
	if _, err := c.PublishNodeInfo(ctx, b1); err != nil {
		t.Fatal(err)
	}
	// Over NATS, with the same answers.
	nodeOpt, err := natslog.ConnectOptions(r.ClientCredsFile(natslog.UserNode))
	if err != nil {
		t.Fatal(err)
	}
	nodeConn, err := nats.Connect(r.NATSURL(), nodeOpt)
	if err != nil {
		t.Fatal(err)
	}
	defer nodeConn.Close()
	msg, err := nodeConn.Request(handlers.SubjectNodeInfo, c1, 10*time.Second)
	if err != nil || msg.Header.Get(handlers.StatusHeader) != "200" {
		t.Fatalf("NATS publish: %v %v", msg, err)
	}

	// The map: signed by the map key under the service certificate, cached
	// with an ETag, 304 on If-None-Match, a malformed one refused.
	svcCert := r.Identity().Cert
	getMap := func() (netmap.VerifiedMap, client.MapAnswer) {
		t.Helper()
		a, err := c.NetworkMap(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		v, err := netmap.VerifyMap(a.Signed, svcCert)
		if err != nil {
			t.Fatal(err)
		}
		return v, a
	}
	m, ans := getMap()
	want := []string{hashOf(t, a2), hashOf(t, b1), hashOf(t, c1)}
	slices.Sort(want)
	if !slices.Equal(m.Payload.NodeInfoHashes, want) || m.Payload.ParametersUpdate != nil || ans.MaxAge != 30*time.Second {
		t.Fatalf("map %+v, want %v", m.Payload, want)
	}
	if again, err := c.NetworkMap(ctx, ans.ETag); err != nil || !again.NotModified {
		t.Fatalf("If-None-Match: %+v %v", again, err)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/network-map", nil)
	req.Header.Set("If-None-Match", "no-quotes")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Fatalf("malformed If-None-Match: %v %v", resp, err)
	}
	if got, err := c.NodeInfo(ctx, hashOf(t, a1)); err != nil || !bytes.Equal(got, a1) {
		t.Fatalf("a replaced NodeInfo stays retrievable: %v", err)
	}
	_, err = c.NodeInfo(ctx, strings.Repeat("0", 64))
	wantCode(t, "unknown NodeInfo", err, "NodeInfoNotFound")
	if infos, err := c.NodeInfos(ctx); err != nil || len(infos) != 3 {
		t.Fatalf("node-infos: %d %v", len(infos), err)
	}
	genesisHash := m.Payload.NetworkParametersHash

	// Each node's own feed, read as the node user reads it: its current
	// NodeInfo while in the map. The node user reads the feeds and cannot
	// write them, nor read the ledger.
	nodeJS, err := jetstream.New(nodeConn)
	if err != nil {
		t.Fatal(err)
	}
	nodeFeeds, err := nodeJS.Stream(ctx, natslog.FeedsStream)
	if err != nil {
		t.Fatal(err)
	}
	nodeFeed := func(n *mapNode) (replica.NodeFeed, error) {
		last, err := nodeFeeds.GetLastMsgForSubject(ctx, replica.SubjectFeedNodes+n.id)
		if err != nil {
			return replica.NodeFeed{}, err
		}
		var f replica.NodeFeed
		if err := json.Unmarshal(last.Data, &f); err != nil {
			return f, err
		}
		if id := last.Header.Get("Nats-Msg-Id"); id != "nodes/"+n.id+"/"+f.TxID {
			return f, fmt.Errorf("Nats-Msg-Id %q for txid %s", id, f.TxID)
		}
		return f, nil
	}
	waitFor(t, "alice's second NodeInfo on her feed", func() bool {
		f, err := nodeFeed(alice)
		return err == nil && f.InMap && f.NodeID == alice.id && f.NodeInfoHash == hashOf(t, a2) && bytes.Equal(f.NodeInfo, a2)
	})
	waitFor(t, "carol on her feed", func() bool { f, err := nodeFeed(carol); return err == nil && f.InMap })
	if _, err := nodeFeed(pending); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("a node that never published has a feed: %v", err)
	}
	if _, err := nodeJS.Publish(ctx, replica.SubjectFeedNodes+alice.id, []byte(`{"in_map":false}`)); err == nil {
		t.Fatal("the node user wrote a node feed")
	}
	if _, err := nodeJS.Stream(ctx, natslog.LedgerStream); err == nil {
		t.Fatal("the node user reads the ledger stream")
	}

	// An update, voted by members: advertised on the map and the feed.
	deadline := time.Now().UTC().Add(2 * time.Second).Format(time.RFC3339Nano)
	update := `{"actions":[{"name":"set_network_parameters","args":{"description":"a notary","update_deadline":"` + deadline + `",` +
		`"parameters":{"minimum_platform_version":1,"notaries":[{"identity":"O=Notary,L=London,C=GB","validating":false}],` +
		`"max_message_size":10485760,"max_transaction_size":10485760,"event_horizon":2592000}}}]}`
	bad := strings.Replace(update, `"max_message_size":10485760`, `"max_message_size":0`, 1)
	_, _, err = c.Propose(ctx, members[0], []byte(bad))
	wantCode(t, "zero max_message_size", err, "ProposalFailedToValidate")
	if !strings.Contains(err.Error(), "max_message_size") {
		t.Fatalf("the refusal does not name the field: %v", err)
	}
	accept(update)
	m, _ = getMap()
	up := m.Payload.ParametersUpdate
	if up == nil || up.Description != "a notary" || m.Payload.NetworkParametersHash != genesisHash {
		t.Fatalf("the update is not advertised: %+v", m.Payload)
	}
	signedNew, err := c.SignedParameters(ctx, up.NewParametersHash)
	if err != nil {
		t.Fatal(err)
	}
	np, h, err := netmap.VerifySignedParameters(signedNew, m.MapKey, netmap.DefaultLimits())
	if err != nil || h != up.NewParametersHash || np.Epoch != 2 || len(np.Notaries) != 1 {
		t.Fatalf("signed parameters: %+v %s %v", np, h, err)
	}
	js, _ := jetstream.New(r.SequencerConn())
	feeds, err := js.Stream(ctx, natslog.FeedsStream)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the update on gavel.feed.params", func() bool {
		last, err := feeds.GetLastMsgForSubject(ctx, replica.SubjectFeedParams)
		if err != nil {
			return false
		}
		var f replica.ParamsFeed
		return json.Unmarshal(last.Data, &f) == nil && f.Update != nil && f.Update.Hash == up.NewParametersHash &&
			last.Header.Get("Nats-Msg-Id") == "params/"+f.TxID
	})

	// Acceptances: only the pending hash, idempotent; carol does not accept.
	ackA, err := c.AckParameters(ctx, alice.ack(t, up.NewParametersHash))
	if err != nil {
		t.Fatal(err)
	}
	if again, err := c.AckParameters(ctx, alice.ack(t, up.NewParametersHash)); err != nil || again.TxID != ackA.TxID {
		t.Fatalf("ack again: %+v %v", again, err)
	}
	if msg, err := nodeConn.Request(handlers.SubjectNodeAck, bob.ack(t, up.NewParametersHash), 10*time.Second); err != nil || msg.Header.Get(handlers.StatusHeader) != "200" {
		t.Fatalf("NATS ack: %v %v", msg, err)
	}
	_, err = c.AckParameters(ctx, carol.ack(t, genesisHash))
	wantCode(t, "stale hash", err, netmap.CodeOutdatedParametersHash)
	_, err = c.AckParameters(ctx, pending.ack(t, up.NewParametersHash))
	wantCode(t, "untrusted ack", err, netmap.CodeNodeNotTrusted)
	acc, err := c.Acceptances(ctx, "")
	if err != nil || acc.Hash != up.NewParametersHash || len(acc.Accepted) != 2 || !slices.Equal(acc.Pending, []string{carol.id}) {
		t.Fatalf("acceptances %+v %v", acc, err)
	}

	// The flag day: the primary appends it once the deadline passes; carol
	// leaves the map, her NodeInfo stays retrievable, the old parameters too.
	waitFor(t, "the flag day", func() bool {
		m, _ = getMap()
		return m.Payload.NetworkParametersHash == up.NewParametersHash
	})
	want = []string{hashOf(t, a2), hashOf(t, b1)}
	slices.Sort(want)
	if !slices.Equal(m.Payload.NodeInfoHashes, want) || m.Payload.ParametersUpdate != nil {
		t.Fatalf("after the flag day %+v, want %v", m.Payload, want)
	}
	if _, err := c.NodeInfo(ctx, hashOf(t, c1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "carol leaving the map on her feed", func() bool {
		f, err := nodeFeed(carol)
		return err == nil && !f.InMap && f.NodeInfoHash == hashOf(t, c1) && f.NodeInfo == nil
	})
	if f, err := nodeFeed(alice); err != nil || !f.InMap {
		t.Fatalf("alice accepted and stays in the map, her feed says %+v %v", f, err)
	}
	if _, err := c.SignedParameters(ctx, genesisHash); err != nil {
		t.Fatal(err)
	}
	// Carol returns by publishing under the new parameters.
	if _, err := c.PublishNodeInfo(ctx, c1); err != nil {
		t.Fatal(err)
	}
	if m, _ = getMap(); len(m.Payload.NodeInfoHashes) != 3 {
		t.Fatalf("carol did not return: %+v", m.Payload)
	}
	waitFor(t, "carol back on her feed", func() bool {
		f, err := nodeFeed(carol)
		return err == nil && f.InMap && bytes.Equal(f.NodeInfo, c1)
	})
	var flagDay engine.TxID
	for s := uint64(1); s <= r.Store().Meta().Seqno; s++ {
		if rec, _, _ := r.Store().Leaf(s); rec.Kind == engine.KindFlagDay {
			flagDay = engine.TxID{View: rec.View, Seqno: s}
		}
	}
	rcpt, err := c.Receipt(ctx, flagDay.String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := receipt.Verify(rcpt, svcCert.PublicKey); err != nil {
		t.Fatalf("flag-day receipt: %v", err)
	}

	// A second update, cancelled.
	deadline = time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	accept(strings.Replace(update, `"update_deadline":"`+deadlineOf(update)+`"`, `"update_deadline":"`+deadline+`"`, 1))
	if m, _ = getMap(); m.Payload.ParametersUpdate == nil {
		t.Fatal("the second update is not advertised")
	}
	accept(`{"actions":[{"name":"cancel_network_parameters_update","args":{}}]}`)
	if m, _ = getMap(); m.Payload.ParametersUpdate != nil {
		t.Fatal("the cancelled update is still advertised")
	}

	// The auditor re-executes every publish, acknowledgement and flag day,
	// once the service is quiet (its tail signed, so the log stops growing).
	waitFor(t, "a signed tail", func() bool { m := r.Store().Meta(); return m.Seqno == m.LastSignature })
	rp := audit.NewReplayer(nil)
	if err := natslog.NewReader(js).Range(ctx, 1, rp.Add); err != nil {
		t.Fatalf("audit: %v", err)
	}
	sum := rp.Summary()
	root := r.Store().Tree().Root()
	if sum.Root != fmt.Sprintf("%x", root[:]) || sum.NetworkMap != 8 {
		t.Fatalf("replay %+v, root %x", sum, root)
	}
}

func deadlineOf(s string) string {
	_, rest, _ := strings.Cut(s, `"update_deadline":"`)
	d, _, _ := strings.Cut(rest, `"`)
	return d
}

// waitFor waits on state (no fixed sleeps), failing after a generous bound.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

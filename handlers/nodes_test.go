package handlers_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/attest"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/nodes"
	"github.com/gavelhq/gavel/engine/receipt"
	"github.com/gavelhq/gavel/engine/state"
	"github.com/gavelhq/gavel/handlers"
	"github.com/gavelhq/gavel/projections"
	"github.com/gavelhq/gavel/scripts/policies"
)

// The node scenarios in testdata/nodes: every transition of the node
// lifecycle and every refusal of a join, run against a real replica over
// HTTP. After each scenario the auditor replays the whole ledger
// (re-deriving each join and delete) and the node read model rebuilt from
// the log alone equals the live one.
//
// Commands (one a line; "-> want" checks the answer):
//
//	node NAME CODE [address=H:P] [bind=OTHER] [role=R]  a node key running CODE (host data SHA-256(CODE))
//	trust-code CODE | distrust-code CODE                 add_virtual_host_data / remove_virtual_host_data
//	policy vds2|min_svn|none|JS                          set_node_join_policy / remove_node_join_policy
//	statement NAME svn=N [sub=S] [tamper]                 register a statement of NAME's host data; NAME's joins carry it
//	join NAME -> Pending|Trusted|error CODE [TEXT]
//	trust NAME [valid_from=V] [days=N] [-> Failed]       transition_node_to_trusted
//	retire NAME [-> Failed]                              remove_node
//	sign                                                 wait until a signature covers every entry
//	delete NAME -> ok|error CODE
//	status NAME -> STATUS [retired_committed] | gone
//	removable -> NAME,… | none
//	list STATUS -> NAME,… | none
//	pages STATUS|removable N -> NAME,… | none           the list N a page (?maxpagesize=N, then each nextLink)
func TestNodeScenarios(t *testing.T) {
	files, _ := filepath.Glob("testdata/nodes/*.txt")
	if len(files) == 0 {
		t.Fatal("no scenarios")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) { runNodeScenario(t, file) })
	}
}

// measurement is what every scenario node declares (trusted at the start).
const measurement = "0102030405060708"

type scenarioNode struct {
	key       ed25519.PrivateKey
	id        string
	code      string
	address   string
	role      string
	bind      []byte
	statement []byte
}

type nodeScenario struct {
	t     *testing.T
	f     *govFixture
	ctx   context.Context
	nodes map[string]*scenarioNode
	iss   *issuer.Issuer
	line  int
}

func runNodeScenario(t *testing.T, file string) {
	f := newGovFixture(t, 1)
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	s := &nodeScenario{t: t, f: f, ctx: context.Background(), nodes: map[string]*scenarioNode{}, iss: iss}
	s.propose(`{"name":"add_virtual_measurement","args":{"measurement":"`+measurement+`"}}`, gov.StateAccepted)
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		s.line++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cmd, want, _ := strings.Cut(line, "->")
		s.step(strings.Fields(cmd), strings.TrimSpace(want))
	}
	s.checkRebuiltAndAudited()
}

func (s *nodeScenario) fatalf(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("line %d: "+format, append([]any{s.line}, args...)...)
}

func hostData(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

func opts(words []string) map[string]string {
	m := map[string]string{}
	for _, w := range words {
		k, v, _ := strings.Cut(w, "=")
		m[k] = v
	}
	return m
}

func (s *nodeScenario) node(name string) *scenarioNode {
	if name == "primary" { // the replica's own node, Trusted from genesis
		return &scenarioNode{id: s.f.r.Node().ID}
	}
	n, ok := s.nodes[name]
	if !ok {
		s.fatalf("no node %s", name)
	}
	return n
}

func (s *nodeScenario) step(w []string, want string) {
	s.t.Helper()
	switch w[0] {
	case "node":
		o := opts(w[3:])
		_, key, _ := ed25519.GenerateKey(nil)
		n := &scenarioNode{key: key, id: engine.NodeID(key.Public().(ed25519.PublicKey)), code: w[2],
			address: o["address"], role: o["role"]}
		if n.address == "" {
			n.address = "10.0.0." + strconv.Itoa(len(s.nodes)+1) + ":443"
		}
		if n.role == "" {
			n.role = nodes.RoleParticipant
		}
		der, _ := x509.MarshalPKIXPublicKey(key.Public())
		n.bind = der
		if other := o["bind"]; other != "" {
			n.bind, _ = x509.MarshalPKIXPublicKey(s.node(other).key.Public())
		}
		s.nodes[w[1]] = n
	case "budget": // budget N: the ledger's script budget (set_js_runtime_options)
		s.propose(`{"name":"set_js_runtime_options","args":{"max_fuel":`+w[1]+`}}`, want)
	case "trust-code":
		s.propose(`{"name":"add_virtual_host_data","args":{"host_data":"`+hostData(w[1])+`"}}`, want)
	case "distrust-code":
		s.propose(`{"name":"remove_virtual_host_data","args":{"host_data":"`+hostData(w[1])+`"}}`, want)
	case "policy":
		src := map[string]string{"vds2": policies.VDS2, "min_svn": policies.MinSVN}[w[1]]
		switch {
		case w[1] == "none":
			s.propose(`{"name":"remove_node_join_policy","args":{}}`, want)
			return
		case src == "":
			src = strings.Join(w[1:], " ")
		}
		b, _ := json.Marshal(src)
		s.propose(`{"name":"set_node_join_policy","args":{"policy":`+string(b)+`}}`, want)
	case "statement":
		s.statement(s.node(w[1]), opts(w[2:]))
	case "join":
		s.join(s.node(w[1]), want)
	case "trust":
		o := opts(w[2:])
		args := map[string]any{"node_id": s.node(w[1]).id}
		if v, ok := o["valid_from"]; ok {
			args["valid_from"] = v
		}
		if v, ok := o["days"]; ok {
			var d int
			json.Unmarshal([]byte(v), &d)
			args["validity_period_days"] = d
		}
		b, _ := json.Marshal(map[string]any{"name": "transition_node_to_trusted", "args": args})
		s.propose(string(b), want)
	case "retire":
		s.propose(`{"name":"remove_node","args":{"node_id":"`+s.node(w[1]).id+`"}}`, want)
	case "sign":
		s.f.waitSigned()
	case "delete":
		err := s.f.c.DeleteNode(s.ctx, s.node(w[1]).id)
		s.expectErr(err, want)
	case "status":
		v, err := s.f.c.Node(s.ctx, s.node(w[1]).id)
		if want == "gone" {
			if code(err) != nodes.CodeNodeNotFound || engine.KindOf(err) != engine.KindNotFound {
				s.fatalf("status of a gone node: %+v %v", v, err)
			}
			return
		}
		got := v.Status
		if v.RetiredCommitted {
			got += " retired_committed"
		}
		if err != nil || got != want || v.HostData != hostData(s.node(w[1]).code) {
			s.fatalf("status %q %+v %v, want %q", got, v, err, want)
		}
	case "removable":
		list, err := s.f.c.RemovableNodes(s.ctx)
		s.expectNames(list, err, want)
	case "list":
		list, err := s.f.c.Nodes(s.ctx, w[1], "")
		s.expectNames(list, err, want)
	case "pages": // pages STATUS|removable N: the list walked N a page through nextLink
		s.pages(w[1], w[2], want)
	default:
		s.fatalf("unknown command %q", w[0])
	}
}

// pages walks a node list (a status's, or the removable nodes) n a page
// from its first page through each nextLink; every page but the last is
// full and the pages add up to the list.
func (s *nodeScenario) pages(status, n, want string) {
	s.t.Helper()
	path := "/node/network/nodes?status=" + status + "&maxpagesize=" + n
	if status == "removable" {
		path = "/node/network/removable_nodes?maxpagesize=" + n
	}
	size, _ := strconv.Atoi(n)
	var all []client.NodeView
	for page := 0; ; page++ {
		code, _, body := s.f.do("GET", path, "", nil)
		var l struct {
			Nodes    []client.NodeView `json:"nodes"`
			NextLink string            `json:"nextLink"`
		}
		if code != 200 || json.Unmarshal(body, &l) != nil {
			s.fatalf("page %d of %s: %d %s", page, path, code, body)
		}
		all = append(all, l.Nodes...)
		if l.NextLink == "" {
			break
		}
		if len(l.Nodes) != size || page > 100 {
			s.fatalf("page %d has %d nodes and a next page", page, len(l.Nodes))
		}
		u, err := url.Parse(l.NextLink)
		if err != nil {
			s.fatalf("%v", err)
		}
		path = u.RequestURI()
		// The token is bound to its list: under another filter it is refused.
		q := u.Query()
		q.Set("status", "Other")
		if code, _, body := s.f.do("GET", u.Path+"?"+q.Encode(), "", nil); status != "removable" && (code != 400 || !strings.Contains(string(body), "InvalidQueryParameterValue")) {
			s.fatalf("a token under another filter: %d %s", code, body)
		}
	}
	s.expectNames(all, nil, want)
}

func (s *nodeScenario) propose(action, want string) {
	s.t.Helper()
	if want == "" {
		want = gov.StateAccepted
	}
	m := s.f.members[0]
	p, _, err := s.f.c.Propose(s.ctx, m, []byte(`{"actions":[`+action+`]}`))
	if strings.HasPrefix(want, "error ") {
		s.expectErr(err, want)
		return
	}
	if err != nil {
		s.fatalf("propose %s: %v", action, err)
	}
	if p.State == gov.StateOpen {
		if p, _, err = s.f.c.Vote(s.ctx, m, p.ProposalID, client.AcceptBallot); err != nil {
			s.fatalf("vote: %v", err)
		}
	}
	if p.State != want {
		s.fatalf("proposal %s is %s (%+v), want %s", action, p.State, p.Failure, want)
	}
}

func (s *nodeScenario) statement(n *scenarioNode, o map[string]string) {
	hd, _ := hex.DecodeString(hostData(n.code))
	sub := o["sub"]
	if sub == "" {
		sub = "gavel/code"
	}
	var svn int
	json.Unmarshal([]byte(o["svn"]), &svn)
	st, err := s.iss.Sign(sub, "application/octet-stream", hd, time.Now(), cose.WithClaim("svn", svn))
	if err != nil {
		s.t.Fatal(err)
	}
	tx, err := s.f.c.RegisterAndWait(s.ctx, st, 10*time.Second)
	if err != nil {
		s.fatalf("register: %v", err)
	}
	ts, err := s.f.c.TransparentStatement(s.ctx, tx, 10*time.Second)
	if err != nil {
		s.fatalf("transparent statement: %v", err)
	}
	if _, ok := o["tamper"]; ok {
		ts = tamperReceipt(s.t, ts)
	}
	n.statement = ts
}

// tamperReceipt flips a byte of the first receipt's inclusion proof.
func tamperReceipt(t *testing.T, ts []byte) []byte {
	rs, err := receipt.Receipts(ts)
	if err != nil || len(rs) == 0 {
		t.Fatalf("receipts: %v", err)
	}
	r := append([]byte{}, rs[0]...)
	r[len(r)-70] ^= 1 // inside the proof, before the signature
	out, err := receipt.Embed(stripReceipts(t, ts), r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func stripReceipts(t *testing.T, ts []byte) []byte {
	m, err := cose.DecodeSign1(ts)
	if err != nil {
		t.Fatal(err)
	}
	m.Unprotected = cose.Header{}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (s *nodeScenario) join(n *scenarioNode, want string) {
	s.t.Helper()
	var hd [32]byte
	b, _ := hex.DecodeString(hostData(n.code))
	copy(hd[:], b)
	m, _ := hex.DecodeString(measurement)
	rd := attest.ReportDataFor(n.bind)
	ev, _ := json.Marshal(attest.VirtualEvidence(hd, m, rd[:]))
	raw, err := nodes.SignJoin(n.key, nodes.JoinRequest{Role: n.role, Address: n.address, CodeVersion: n.code,
		Attestation: ev, TransparentStatement: n.statement})
	if err != nil {
		s.t.Fatal(err)
	}
	before := s.f.r.Store().Meta().Seqno
	res, err := s.f.c.Join(s.ctx, raw)
	if strings.HasPrefix(want, "error ") {
		s.expectErr(err, want)
		s.f.still(before)
		return
	}
	if err != nil || res.NodeID != n.id || res.NodeStatus != want {
		s.fatalf("join %+v %v, want %s", res, err, want)
	}
	if want == nodes.StatusTrusted {
		s.checkEndorsed(n, res.NodeCertificate)
	}
}

// checkEndorsed checks a Trusted node's certificate: the node's key,
// issued by the service identity.
func (s *nodeScenario) checkEndorsed(n *scenarioNode, certPEM string) {
	blk, _ := pem.Decode([]byte(certPEM))
	if blk == nil {
		s.fatalf("no endorsed certificate")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		s.fatalf("endorsed certificate: %v", err)
	}
	if !n.key.Public().(ed25519.PublicKey).Equal(cert.PublicKey) {
		s.fatalf("the endorsed certificate is not the node's key")
	}
	if err := cert.CheckSignatureFrom(s.f.r.Identity().Cert); err != nil {
		s.fatalf("the endorsed certificate is not signed by the service: %v", err)
	}
}

func (s *nodeScenario) expectErr(err error, want string) {
	s.t.Helper()
	if want == "ok" {
		if err != nil {
			s.fatalf("%v", err)
		}
		return
	}
	f := strings.Fields(strings.TrimPrefix(want, "error "))
	if len(f) == 0 || code(err) != f[0] {
		s.fatalf("got %v, want %s", err, want)
	}
	if text := strings.Join(f[1:], " "); text != "" && !strings.Contains(engine.AsError(err).Message, text) {
		s.fatalf("message %q does not say %q", engine.AsError(err).Message, text)
	}
}

func (s *nodeScenario) expectNames(list []client.NodeView, err error, want string) {
	s.t.Helper()
	if err != nil {
		s.fatalf("%v", err)
	}
	names := []string{}
	for name, n := range s.nodes {
		for _, v := range list {
			if v.NodeID == n.id {
				names = append(names, name)
			}
		}
	}
	sort.Strings(names)
	got := strings.Join(names, ",")
	if got == "" {
		got = "none"
	}
	if got != want {
		s.fatalf("nodes %s, want %s", got, want)
	}
}

// checkRebuiltAndAudited replays the ledger with the auditor and folds
// the node read model from the log alone: it must equal the live one.
func (s *nodeScenario) checkRebuiltAndAudited() {
	s.t.Helper()
	s.f.waitSigned()
	sum := s.f.auditLedger()
	if len(sum.VoidEntries) != 0 {
		s.t.Fatalf("void entries %+v", sum.VoidEntries)
	}
	var nodeEntries uint64
	for seq := uint64(1); seq <= s.f.r.Store().Meta().Seqno; seq++ {
		if rec, _, _ := s.f.r.Store().Leaf(seq); rec.Kind == engine.KindNodeJoin || rec.Kind == engine.KindNodeDelete {
			nodeEntries++
		}
	}
	if nodeEntries == 0 || sum.Nodes != nodeEntries {
		s.t.Fatalf("the auditor re-derived %d node entries of %d", sum.Nodes, nodeEntries)
	}
	live, seqno, err := s.f.r.NodesModel()
	if err != nil {
		s.t.Fatal(err)
	}
	liveSnap, err := s.f.r.NodesSnapshot(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	// Rebuilt from the log alone, up to the same entry, into a new state.
	st, err := state.Open(s.t.TempDir())
	if err != nil {
		s.t.Fatal(err)
	}
	defer st.Close()
	st.SetProjector(nodes.Projector{})
	js, _ := jetstream.New(s.f.r.SequencerConn())
	if err := state.CatchUp(s.ctx, st, logUpTo{natslog.NewReader(js), seqno}); err != nil {
		s.t.Fatal(err)
	}
	sn, err := st.Snapshot()
	if err != nil {
		s.t.Fatal(err)
	}
	defer sn.Close()
	v := projections.Nodes{Model: sn.Model(), Primary: s.f.r.Node().ID}
	rebuilt, err := v.Dump()
	if err != nil {
		s.t.Fatal(err)
	}
	if !bytes.Equal(live.Encode(), rebuilt.Encode()) {
		s.t.Fatalf("the node read model rebuilt from the log differs from the live one at %d\n%s", seqno, modelDiff(live, rebuilt))
	}
	if liveSnap.Seqno == seqno {
		rebuiltSnap, err := v.Snapshot()
		if err != nil {
			s.t.Fatal(err)
		}
		a, _ := json.Marshal(liveSnap)
		b, _ := json.Marshal(rebuiltSnap)
		if !bytes.Equal(a, b) {
			s.t.Fatalf("rebuilt node views differ from the live ones\nlive    %s\nrebuilt %s", a, b)
		}
	}
}

// logUpTo is the ledger up to entry end.
type logUpTo struct {
	r   *natslog.Reader
	end uint64
}

var errLogEnd = errors.New("end of the range")

func (l logUpTo) Range(ctx context.Context, from uint64, fn func(engine.LedgerMsg) error) error {
	err := l.r.Range(ctx, from, func(m engine.LedgerMsg) error {
		if m.Seq > l.end {
			return errLogEnd
		}
		return fn(m)
	})
	if errors.Is(err, errLogEnd) {
		return nil
	}
	return err
}

// modelDiff lists the keys two read models disagree on.
func modelDiff(live, rebuilt engine.WriteSet) string {
	key := func(w engine.Write) string { return w.Table + "|" + w.Key }
	in := func(ws engine.WriteSet) map[string]string {
		m := map[string]string{}
		for _, w := range ws {
			m[key(w)] = string(w.Value)
		}
		return m
	}
	l, r := in(live), in(rebuilt)
	var out []string
	for k, v := range l {
		if r[k] != v {
			out = append(out, fmt.Sprintf("%s\n  live    %s\n  rebuilt %s", k, v, r[k]))
		}
	}
	for k, v := range r {
		if _, ok := l[k]; !ok {
			out = append(out, fmt.Sprintf("%s\n  live    (none)\n  rebuilt %s", k, v))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// A join over NATS (gavel.submit.node.join) gets the HTTP route's answer.
func TestNodeJoinOverNATS(t *testing.T) {
	f := newGovFixture(t, 1)
	s := &nodeScenario{t: t, f: f, ctx: context.Background(), nodes: map[string]*scenarioNode{}}
	s.propose(`{"name":"add_virtual_measurement","args":{"measurement":"`+measurement+`"}}`, "")
	s.step(strings.Fields("trust-code A"), "")
	s.step(strings.Fields("node a A"), "")
	n := s.node("a")
	var hd [32]byte
	b, _ := hex.DecodeString(hostData("A"))
	copy(hd[:], b)
	m, _ := hex.DecodeString(measurement)
	rd := attest.ReportDataFor(n.bind)
	ev, _ := json.Marshal(attest.VirtualEvidence(hd, m, rd[:]))
	raw, err := nodes.SignJoin(n.key, nodes.JoinRequest{Role: n.role, Address: n.address, Attestation: ev})
	if err != nil {
		t.Fatal(err)
	}
	nc := f.natsClientAs(t, natslog.UserNode)
	msg, err := nc.Request(handlers.SubjectNodeJoin, raw, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var res nodes.JoinResult
	if msg.Header.Get(handlers.StatusHeader) != "200" || json.Unmarshal(msg.Data, &res) != nil || res.NodeID != n.id || res.NodeStatus != "Pending" {
		t.Fatalf("NATS join: %v %s", msg.Header, msg.Data)
	}
	msg, err = nc.Request(handlers.SubjectNodeJoin, raw[:len(raw)-1], 10*time.Second)
	if err != nil || msg.Header.Get(handlers.StatusHeader) != "400" {
		t.Fatalf("truncated join over NATS: %v %v", msg, err)
	}
}

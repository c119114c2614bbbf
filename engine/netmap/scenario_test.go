package netmap_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/netmap"
)

// The scenario language, one command per line, each followed by the line
// "=> <expected>":
//
//	genesis JSON                    first parameters (modified_time defaults to the clock)
//	node N [STATUS] [alg=EdDSA]     N in the nodes table (Trusted by default; made on first use)
//	delete N                        N leaves the nodes table
//	time +DUR                       move the entry clock
//	publish N serial=S [platform=P] [names=A;B] [addrs=H:P,H:P] [@badsig] [@unsigned] [@signer=M] [@forge=M] [@payload=JSON]
//	resend                          the previous envelope again, verbatim
//	set L deadline=+DUR [desc=TEXT] JSON   an accepted set_network_parameters; L names its hash
//	cancel                          an accepted cancel_network_parameters_update
//	ack N L|current|unknown [@badsig] [@unsigned] [@signer=M] [@forge=M]
//	flagday [L]                     the primary's flag-day entry (the pending hash by default)
//	map                             => epoch=E nodes=N:S,… update=L|none
//	nodeinfo N:S                    => stored | absent (the NodeInfo stays retrievable by hash)
//	params L                        => stored | absent
//	acceptances L                   => the names that accepted L
//	autoaccept L [disabled] [exclude=F,F]   the agent's choice for L against the current parameters
//	outcome N L                     the agent's flag-day outcome for L against the current parameters
//	start N file=L|none|corrupt|foreign [update=L] [map=L|down] [platform=P]
//	folder NAME=N:S|NAME=corrupt …  the agent's additional-node-infos scan
//	sync N                          N's cache against the map: => fetch=… drop=…
//
// @unsigned: the envelope with an empty signature;
// @signer=M: M signs with its own key and kid (M is the publisher);
// @forge=M: the envelope names N (kid and key) but M signs; @payload=JSON
// (last on the line): these payload bytes, signed by N. In names, _ is a
// space.
//
// Answers: "ok", "unchanged" (success, no entry), "error <Code>". Labels:
// "genesis" and "current" name parameters, N:S a node's NodeInfo with
// serial S. After the last line the runner replays every entry from an
// empty state, re-deriving each command from its input, and requires the
// same write set.

type scenEntry struct {
	kind   engine.EntryKind
	input  []byte
	facts  engine.Facts
	writes engine.WriteSet
	redo   func(st constitution.MemState, f engine.Facts) (engine.WriteSet, error)
}

type scenario struct {
	t          *testing.T
	file       string
	st         constitution.MemState
	now        time.Time
	lim        netmap.Limits
	nodes      map[string]*testNode
	names      map[string]string // node id → name
	labels     map[string]string // label → parameters hash
	labelOrder []string
	infos      map[string]string // NodeInfo hash → N:S
	caches     map[string][]string
	own        map[string]string // node name → hash of its last signed NodeInfo
	raws       map[string][]byte // NodeInfo hash → signed bytes
	mapKey     *testNode
	entries    []scenEntry
	last       []byte
	lastCmd    string
}

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScenario(t, f) })
	}
}

func runScenario(t *testing.T, file string) {
	s := &scenario{t: t, file: file, st: constitution.MemState{}, now: t0, lim: netmap.DefaultLimits(),
		nodes: map[string]*testNode{}, names: map[string]string{}, labels: map[string]string{},
		infos: map[string]string{}, caches: map[string][]string{},
		own: map[string]string{}, raws: map[string][]byte{}, mapKey: newNode(t, "map", "ES256")}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var pending string
	pendingLine, line, checked := 0, 0, 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if want, ok := strings.CutPrefix(text, "=>"); ok {
			if pendingLine == 0 {
				t.Fatalf("%s:%d: expectation without a command", file, line)
			}
			if want = strings.TrimSpace(want); pending != want {
				t.Errorf("%s:%d: got %q, want %q", file, pendingLine, pending, want)
			}
			pendingLine = 0
			checked++
			continue
		}
		if pendingLine != 0 {
			t.Fatalf("%s:%d: command without an expectation (got %q)", file, pendingLine, pending)
		}
		pending, pendingLine = s.do(text, line), line
	}
	if pendingLine != 0 {
		t.Fatalf("%s:%d: command without an expectation (got %q)", file, pendingLine, pending)
	}
	if checked == 0 {
		t.Fatalf("%s: no expectations", file)
	}
	s.replay()
}

func (s *scenario) fatalf(line int, format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("%s:%d: %s", s.file, line, fmt.Sprintf(format, args...))
}

func (s *scenario) node(name string) *testNode {
	n, ok := s.nodes[name]
	if !ok {
		n = newNode(s.t, name, "ES256")
		s.nodes[name], s.names[n.id] = n, name
	}
	return n
}

func (s *scenario) facts() engine.Facts {
	return engine.Facts{TxID: engine.TxID{View: 1, Seqno: uint64(len(s.entries) + 1)}, Time: s.now}
}

// commit records an entry and applies it.
func (s *scenario) commit(kind engine.EntryKind, input []byte, ws engine.WriteSet, redo func(constitution.MemState, engine.Facts) (engine.WriteSet, error)) {
	s.entries = append(s.entries, scenEntry{kind: kind, input: input, facts: s.facts(), writes: ws.Canonical(), redo: redo})
	s.st.Apply(ws)
}

// options splits "k=v" words and "@mod" words from the rest.
func options(fields []string) (kv map[string]string, mods map[string]string, rest []string) {
	kv, mods = map[string]string{}, map[string]string{}
	for _, f := range fields {
		switch {
		case strings.HasPrefix(f, "@"):
			k, v, _ := strings.Cut(f[1:], "=")
			mods[k] = v
		case strings.Contains(f, "=") && !strings.HasPrefix(f, "{"):
			k, v, _ := strings.Cut(f, "=")
			kv[k] = v
		default:
			rest = append(rest, f)
		}
	}
	return
}

func answer(err error) string {
	if err != nil {
		return "error " + engine.AsError(err).Code
	}
	return "ok"
}

func (s *scenario) do(text string, line int) string {
	verb, rest, _ := strings.Cut(text, " ")
	switch verb {
	case "genesis":
		p, err := netmap.ParseParameters([]byte(rest), s.lim)
		if err != nil {
			return answer(err)
		}
		if p.ModifiedTime.IsZero() {
			p.ModifiedTime = s.now
		}
		ws, err := netmap.GenesisWrites(s.st, p, s.facts(), s.lim)
		if err != nil {
			return answer(err)
		}
		s.setLabel("genesis", p.Hash())
		s.commit(engine.KindGenesis, nil, ws, func(st constitution.MemState, f engine.Facts) (engine.WriteSet, error) {
			return netmap.GenesisWrites(st, p, f, s.lim)
		})
		return "ok"
	case "node":
		kv, _, args := options(strings.Fields(rest))
		if len(args) == 0 {
			s.fatalf(line, "node needs a name")
		}
		name, status := args[0], netmap.StatusTrusted
		if len(args) > 1 {
			status = args[1]
		}
		if _, ok := s.nodes[name]; !ok && kv["alg"] != "" {
			n := newNode(s.t, name, kv["alg"])
			s.nodes[name], s.names[n.id] = n, name
		}
		n := s.node(name)
		b, _ := json.Marshal(n.record(status))
		ws := engine.WriteSet{{Table: netmap.NodesDirectoryTable, Key: n.id, Value: b}}
		s.commit(engine.KindGovProposal, nil, ws, fixed(ws))
		return "ok"
	case "delete":
		ws := engine.WriteSet{{Table: netmap.NodesDirectoryTable, Key: s.node(rest).id, Delete: true}}
		s.commit(engine.KindGovProposal, nil, ws, fixed(ws))
		return "ok"
	case "time":
		d, err := time.ParseDuration(strings.TrimPrefix(rest, "+"))
		if err != nil {
			s.fatalf(line, "%v", err)
		}
		s.now = s.now.Add(d)
		return "ok"
	case "publish":
		return s.publish(rest, line)
	case "resend":
		if s.last == nil {
			s.fatalf(line, "nothing to resend")
		}
		if s.lastCmd == "ack" {
			return s.submitAck(s.last)
		}
		return s.submitInfo(s.last)
	case "set":
		return s.set(rest, line)
	case "cancel":
		ws, err := netmap.ApplyCancelUpdate(s.st)
		if err != nil {
			return answer(err)
		}
		s.commit(engine.KindGovProposal, nil, ws, func(st constitution.MemState, _ engine.Facts) (engine.WriteSet, error) {
			return netmap.ApplyCancelUpdate(st)
		})
		return "ok"
	case "ack":
		return s.ack(rest, line)
	case "flagday":
		hash := ""
		if rest != "" {
			hash = s.label(rest, line)
		} else if p, ok, _ := netmap.LoadPending(s.st); ok {
			hash = p.NewParametersHash
		} else {
			hash = strings.Repeat("0", 64)
		}
		cmd := netmap.FlagDay{Hash: hash}
		return s.execute(cmd, func(eff engine.Effect) string {
			var r netmap.FlagDayResult
			json.Unmarshal(eff.Result, &r)
			return "ok epoch=" + strconv.FormatInt(r.Epoch, 10)
		})
	case "map":
		m, err := netmap.Map(s.st, dir(s.st), s.now)
		if err != nil {
			return answer(err)
		}
		cur, _ := netmap.LoadCurrent(s.st)
		var names []string
		for _, h := range m.NodeInfoHashes {
			names = append(names, s.infos[h])
		}
		slices.Sort(names)
		up := "none"
		if m.ParametersUpdate != nil {
			up = s.labelOf(m.ParametersUpdate.NewParametersHash)
		}
		if m.NetworkParametersHash != cur.Hash {
			s.fatalf(line, "map names parameters %s, current is %s", m.NetworkParametersHash, cur.Hash)
		}
		return fmt.Sprintf("epoch=%d nodes=%s update=%s", cur.Epoch, strings.Join(names, ","), up)
	case "nodeinfo":
		for h, label := range s.infos {
			if label == rest {
				if _, ok, _ := s.st.Get(netmap.TableNodeInfos, h); ok {
					return "stored"
				}
			}
		}
		return "absent"
	case "params":
		if _, _, ok, _ := netmap.LoadParameters(s.st, s.label(rest, line)); ok {
			return "stored"
		}
		return "absent"
	case "acceptances":
		acks, err := netmap.Acceptances(s.st, s.label(rest, line))
		if err != nil {
			return answer(err)
		}
		var names []string
		for _, a := range acks {
			names = append(names, s.names[a.NodeID])
		}
		slices.Sort(names)
		return strings.Join(names, " ")
	case "autoaccept", "outcome", "start", "folder", "sync":
		return s.agent(verb, rest, line)
	}
	s.fatalf(line, "unknown command %q", verb)
	return ""
}

func fixed(ws engine.WriteSet) func(constitution.MemState, engine.Facts) (engine.WriteSet, error) {
	return func(constitution.MemState, engine.Facts) (engine.WriteSet, error) { return ws, nil }
}

func (s *scenario) label(l string, line int) string {
	switch l {
	case "current":
		cur, err := netmap.LoadCurrent(s.st)
		if err != nil {
			s.fatalf(line, "%v", err)
		}
		return cur.Hash
	case "unknown":
		return strings.Repeat("ab", 32)
	}
	h, ok := s.labels[l]
	if !ok {
		s.fatalf(line, "no parameters labelled %s", l)
	}
	return h
}

// labelOf names a hash by the label given to it last.
func (s *scenario) labelOf(hash string) string {
	for i := len(s.labelOrder) - 1; i >= 0; i-- {
		if l := s.labelOrder[i]; s.labels[l] == hash {
			return l
		}
	}
	return hash[:8]
}

func (s *scenario) setLabel(l, hash string) {
	s.labels[l] = hash
	s.labelOrder = append(s.labelOrder, l)
}

func (s *scenario) buildInfo(name string, kv map[string]string, line int) netmap.NodeInfo {
	info := s.node(name).info(0)
	for k, v := range kv {
		switch k {
		case "serial":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				s.fatalf(line, "serial %q", v)
			}
			info.Serial = n
		case "platform":
			n, err := strconv.Atoi(v)
			if err != nil {
				s.fatalf(line, "platform %q", v)
			}
			info.PlatformVersion = n
		case "names":
			info.LegalIdentities = strings.Split(strings.ReplaceAll(v, "_", " "), ";")
		case "addrs":
			info.Addresses = strings.Split(v, ",")
		default:
			s.fatalf(line, "unknown option %q", k)
		}
	}
	return info
}

func (s *scenario) publish(rest string, line int) string {
	rest, payload, _ := strings.Cut(rest, "@payload=")
	kv, mods, args := options(strings.Fields(rest))
	if len(args) == 0 {
		s.fatalf(line, "publish needs a node")
	}
	n := s.node(args[0])
	signer := n
	if m := mods["signer"]; m != "" {
		signer = s.node(m)
	}
	info := s.buildInfo(args[0], kv, line)
	var raw []byte
	var err error
	switch {
	case payload != "":
		raw, err = netmap.SignNodeInfoPayload(signer.key, []byte(payload))
	case mods["forge"] != "":
		b, _ := json.Marshal(info)
		raw = forge(s.t, netmap.MsgNodeInfo, b, n, s.node(mods["forge"]))
	default:
		raw, err = netmap.SignNodeInfo(signer.key, info)
	}
	if err != nil {
		s.fatalf(line, "sign: %v", err)
	}
	if _, ok := mods["badsig"]; ok {
		raw[len(raw)-2] ^= 0x01
	}
	if _, ok := mods["unsigned"]; ok {
		raw = unsigned(s.t, raw)
	}
	if pi, err := netmap.ParseNodeInfo(raw, s.lim); err == nil {
		s.infos[pi.Hash] = fmt.Sprintf("%s:%d", s.names[pi.NodeID], pi.Info.Serial)
		s.own[args[0]] = pi.Hash
		s.raws[pi.Hash] = raw
	}
	s.last, s.lastCmd = raw, "publish"
	return s.submitInfo(raw)
}

func (s *scenario) submitInfo(raw []byte) string {
	v, err := netmap.VerifyNodeInfo(raw, dir(s.st), s.lim)
	if err != nil {
		s.t.Logf("%v", err)
		return answer(err)
	}
	return s.execute(netmap.Publish{Info: v}, nil)
}

func (s *scenario) ack(rest string, line int) string {
	_, mods, args := options(strings.Fields(rest))
	if len(args) != 2 {
		s.fatalf(line, "ack N L")
	}
	signer := s.node(args[0])
	if m := mods["signer"]; m != "" {
		signer = s.node(m)
	}
	raw, err := netmap.SignAck(signer.key, s.label(args[1], line))
	if err != nil {
		s.fatalf(line, "%v", err)
	}
	if m := mods["forge"]; m != "" {
		raw = forge(s.t, netmap.MsgNodeAck, []byte(s.label(args[1], line)), s.node(args[0]), s.node(m))
	}
	if _, ok := mods["badsig"]; ok {
		raw[len(raw)-2] ^= 0x01
	}
	if _, ok := mods["unsigned"]; ok {
		raw = unsigned(s.t, raw)
	}
	s.last, s.lastCmd = raw, "ack"
	return s.submitAck(raw)
}

func (s *scenario) submitAck(raw []byte) string {
	v, err := netmap.VerifyAck(raw, dir(s.st))
	if err != nil {
		s.t.Logf("%v", err)
		return answer(err)
	}
	return s.execute(netmap.Ack{Ack: v}, nil)
}

// execute runs a command the way the sequencer does; an accepted one
// becomes an entry, a replayed or refused one writes nothing.
func (s *scenario) execute(cmd engine.Command, describe func(engine.Effect) string) string {
	eff, err := cmd.Execute(s.st, s.facts())
	if err != nil {
		s.t.Logf("%v", err)
		return answer(err)
	}
	if eff.Replayed {
		if len(eff.Writes) != 0 {
			s.t.Fatalf("a replayed %s wrote %d keys", cmd.Kind(), len(eff.Writes))
		}
		return "unchanged"
	}
	lim := s.lim
	s.commit(cmd.Kind(), cmd.Input(), eff.Writes, func(st constitution.MemState, f engine.Facts) (engine.WriteSet, error) {
		c, err := netmap.Decode(cmd.Kind(), cmd.Input(), dir(st), nil, lim)
		if err != nil {
			return nil, err
		}
		e, err := c.Execute(st, f)
		return e.Writes, err
	})
	if describe != nil {
		return describe(eff)
	}
	return "ok"
}

func (s *scenario) set(rest string, line int) string {
	i := strings.Index(rest, "{")
	if i < 0 {
		s.fatalf(line, "set L deadline=+DUR [desc=TEXT] JSON")
	}
	kv, _, args := options(strings.Fields(rest[:i]))
	if len(args) != 1 {
		s.fatalf(line, "set needs one label")
	}
	deadline := kv["deadline"]
	if strings.HasPrefix(deadline, "+") || strings.HasPrefix(deadline, "-") {
		d, err := time.ParseDuration(deadline)
		if err != nil {
			s.fatalf(line, "%v", err)
		}
		deadline = s.now.Add(d).Format(time.RFC3339)
	}
	argsJSON, _ := json.Marshal(map[string]any{"parameters": json.RawMessage(rest[i:]),
		"description": strings.ReplaceAll(kv["desc"], "_", " "), "update_deadline": deadline})
	apply := func(st constitution.MemState, f engine.Facts) (engine.WriteSet, error) {
		u, err := netmap.ParseSetParameters(argsJSON, s.lim)
		if err != nil {
			return nil, err
		}
		ws, _, err := u.Apply(st, f, s.lim)
		return ws, err
	}
	ws, err := apply(s.st, s.facts())
	if err != nil {
		s.t.Logf("%v", err)
		return answer(err)
	}
	p, _ := ws.Value(netmap.TablePending, netmap.Singleton)
	var pend netmap.Pending
	json.Unmarshal(p, &pend)
	s.setLabel(args[0], pend.NewParametersHash)
	s.commit(engine.KindGovProposal, argsJSON, ws, apply)
	return "ok"
}

// replay re-derives every entry from an empty state.
func (s *scenario) replay() {
	st := constitution.MemState{}
	for i, e := range s.entries {
		ws, err := e.redo(st, e.facts)
		if err != nil {
			s.t.Fatalf("%s: replay of entry %d (%s): %v", s.file, i+1, e.kind, err)
		}
		if !ws.Equal(e.writes) {
			s.t.Fatalf("%s: replay of entry %d (%s) wrote another write set", s.file, i+1, e.kind)
		}
		st.Apply(ws)
	}
	s.replayCatchesForgery()
	m1, err1 := netmap.Map(s.st, dir(s.st), s.now)
	m2, err2 := netmap.Map(st, dir(st), s.now)
	if (err1 == nil) != (err2 == nil) || string(m1.Encode()) != string(m2.Encode()) {
		s.t.Fatalf("%s: the replayed map differs", s.file)
	}
}

// replayCatchesForgery changes one value in the last network-map entry's
// write set and checks that the replay no longer matches it, so the replay
// above could fail.
func (s *scenario) replayCatchesForgery() {
	last := -1
	for i, e := range s.entries {
		if (e.kind == netmap.KindNodeInfo || e.kind == netmap.KindNodeAck || e.kind == netmap.KindFlagDay) && len(e.writes) > 0 {
			last = i
		}
	}
	if last < 0 {
		return
	}
	st := constitution.MemState{}
	for i, e := range s.entries[:last+1] {
		ws, err := e.redo(st, e.facts)
		if err != nil {
			s.t.Fatalf("%s: replay of entry %d: %v", s.file, i+1, err)
		}
		if i == last {
			forged := slices.Clone(e.writes)
			forged[0].Value = append(slices.Clone(forged[0].Value), ' ')
			if ws.Equal(forged) {
				s.t.Fatalf("%s: a forged write to %s/%s replays as honest", s.file, forged[0].Table, forged[0].Key)
			}
			return
		}
		st.Apply(ws)
	}
}

package netmap_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/engine/netmap/agent"
)

// agent runs the node agent's pure decisions on the scenario's state.
func (s *scenario) agent(verb, rest string, line int) string {
	kv, _, args := options(strings.Fields(rest))
	cur, err := netmap.LoadCurrent(s.st)
	if err != nil {
		s.fatalf(line, "%v", err)
	}
	current, _, _, _ := netmap.LoadParameters(s.st, cur.Hash)
	params := func(label string) netmap.NetworkParameters {
		p, _, ok, err := netmap.LoadParameters(s.st, s.label(label, line))
		if err != nil || !ok {
			s.fatalf(line, "parameters %s not stored", label)
		}
		return p
	}
	switch verb {
	case "autoaccept":
		if len(args) == 0 {
			s.fatalf(line, "autoaccept L")
		}
		pol := agent.Policy{Disabled: slices.Contains(args[1:], "disabled")}
		if ex := kv["exclude"]; ex != "" {
			pol.Excluded = strings.Split(ex, ",")
		}
		if err := pol.Validate(); err != nil {
			return answer(err)
		}
		if agent.CanAutoAccept(current, params(args[0]), pol) {
			return "yes"
		}
		return "no"
	case "outcome":
		if len(args) != 2 {
			s.fatalf(line, "outcome N L")
		}
		h := s.label(args[1], line)
		_, accepted, _ := s.st.Get(netmap.TableAcks, netmap.AckKey(h, s.node(args[0]).id))
		o := agent.FlagDay(current, params(args[1]), accepted)
		out := fmt.Sprintf("%s %d", o.Action, o.ExitCode)
		if o.Action == agent.Refuse {
			out += ": " + o.Message
		}
		return out
	case "start":
		if len(args) != 1 {
			s.fatalf(line, "start N file=…")
		}
		in := agent.Startup{PlatformVersion: 4, MapKey: s.mapKey.key.Public(), Limits: s.lim,
			Parameters: s.paramsFile(kv["file"], line), Update: s.paramsFile(kv["update"], line)}
		if v := kv["platform"]; v != "" {
			in.PlatformVersion, _ = strconv.Atoi(v)
		}
		switch m := kv["map"]; m {
		case "down":
		case "":
			in.Advertised = cur.Hash
		default:
			in.Advertised = s.label(m, line)
		}
		d, err := agent.DecideStart(in)
		if err != nil {
			s.t.Logf("%v", err)
			return answer(err)
		}
		switch {
		case d.Download:
			return "download " + s.labelOf(d.Hash)
		case d.Promote:
			return "promote " + s.labelOf(d.Hash)
		}
		return "ok " + s.labelOf(d.Hash)
	case "folder":
		var files []agent.File
		for name, v := range kv {
			f := agent.File{Name: name}
			if v == "corrupt" {
				f.Data = []byte("\xd2\x84not a NodeInfo")
			} else {
				n, serial, _ := strings.Cut(v, ":")
				sn, _ := strconv.ParseInt(serial, 10, 64)
				raw := s.node(n).sign(s.t, s.node(n).info(sn))
				pi, _ := netmap.ParseNodeInfo(raw, s.lim)
				s.infos[pi.Hash] = v
				f.Data = raw
			}
			files = append(files, f)
		}
		sc := agent.ScanFolder(files, s.lim)
		var nodes, corrupt []string
		for _, v := range sc.Infos {
			nodes = append(nodes, s.infos[v.Hash])
		}
		for _, r := range sc.Corrupt {
			corrupt = append(corrupt, r.File)
		}
		slices.Sort(nodes)
		return fmt.Sprintf("nodes=%s corrupt=%s ignored=%s", strings.Join(nodes, ","), strings.Join(corrupt, ","), strings.Join(sc.Ignored, ","))
	case "sync":
		if len(args) != 1 {
			s.fatalf(line, "sync N")
		}
		m, err := netmap.Map(s.st, dir(s.st), s.now)
		if err != nil {
			return answer(err)
		}
		own := s.own[args[0]]
		cache := s.caches[args[0]]
		if own != "" && !slices.Contains(cache, own) {
			cache = append(cache, own) // the node puts its own NodeInfo in its cache at start
		}
		fetch, drop := agent.Reconcile(cache, m.NodeInfoHashes, []string{own})
		for _, h := range fetch {
			if _, ok, _ := s.st.Get(netmap.TableNodeInfos, h); !ok {
				s.fatalf(line, "map names %s, which is not retrievable", h)
			}
		}
		next := slices.DeleteFunc(slices.Clone(cache), func(h string) bool { return slices.Contains(drop, h) })
		s.caches[args[0]] = append(next, fetch...)
		return fmt.Sprintf("fetch=%s drop=%s", s.labelList(fetch), s.labelList(drop))
	}
	s.fatalf(line, "unknown agent command %q", verb)
	return ""
}

func (s *scenario) labelList(hashes []string) string {
	var out []string
	for _, h := range hashes {
		out = append(out, s.infos[h])
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// paramsFile is a network-parameters file: L's parameters signed by the
// map key, or "corrupt", "foreign" (signed by another key), or absent.
func (s *scenario) paramsFile(v string, line int) []byte {
	switch v {
	case "", "none":
		return nil
	case "corrupt":
		b := s.paramsFile("current", line)
		return b[:len(b)/2] // a copy cut short
	case "foreign":
		p, _, _, _ := netmap.LoadParameters(s.st, s.label("current", line))
		raw, err := netmap.SignParameters(newNode(s.t, "other", "ES256").key, p)
		if err != nil {
			s.fatalf(line, "%v", err)
		}
		return raw
	}
	p, _, ok, _ := netmap.LoadParameters(s.st, s.label(v, line))
	if !ok {
		s.fatalf(line, "parameters %s not stored", v)
	}
	raw, err := netmap.SignParameters(s.mapKey.key, p)
	if err != nil {
		s.fatalf(line, "%v", err)
	}
	return raw
}

// forge builds a node envelope that names claimed (kid and key) but is
// signed by signer's key, as an impersonator would.
func forge(t testing.TB, msgType string, payload []byte, claimed, signer *testNode) []byte {
	t.Helper()
	real, err := netmap.SignNodeInfoPayload(claimed.key, payload)
	if msgType == netmap.MsgNodeAck {
		real, err = netmap.SignAck(claimed.key, string(payload))
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := cose.DecodeSign1(real)
	if err != nil {
		t.Fatal(err)
	}
	alg, _ := cose.DefaultAlgorithm(signer.key.Public())
	if m.Signature, err = cose.Sign(signer.key, alg, m.Protected, m.Payload); err != nil {
		t.Fatal(err)
	}
	out, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unsigned is raw with its signature removed (an empty byte string).
func unsigned(t testing.TB, raw []byte) []byte {
	t.Helper()
	m, err := cose.DecodeSign1(raw)
	if err != nil {
		t.Fatal(err)
	}
	m.Signature = []byte{}
	out, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

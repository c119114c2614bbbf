package agent_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/engine/netmap/agent"
)

func key(t testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func params() netmap.NetworkParameters {
	return netmap.NetworkParameters{
		MinimumPlatformVersion: 4,
		Notaries:               []netmap.Notary{{Identity: "O=Notary, L=Zurich, C=CH"}},
		MaxMessageSize:         10 << 20, MaxTransactionSize: 10 << 20,
		ModifiedTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Epoch: 1, EventHorizon: netmap.DefaultEventHorizon,
	}
}

// Corda's NetworkMapUpdaterTest "auto acceptance checks are correct", and
// the disabled switch.
func TestCanAutoAccept(t *testing.T) {
	base := params()
	acceptable := base
	acceptable.PackageOwnership = map[string]string{"com.example1": "k1", "com.example2": "k2"}
	acceptable.WhitelistedContractImplementations = map[string][]string{"example1": {strings.Repeat("a", 64)}}
	acceptable.Epoch, acceptable.ModifiedTime = 2, base.ModifiedTime.Add(time.Hour)
	notAcceptable := acceptable
	notAcceptable.MaxMessageSize++
	notaries := base
	notaries.Notaries = nil
	for _, tc := range []struct {
		name   string
		update netmap.NetworkParameters
		pol    agent.Policy
		want   bool
	}{
		{"identical", base, agent.Policy{}, true},
		{"identical, all excluded", base, agent.Policy{Excluded: agent.AutoAcceptableFields}, true},
		{"identical, disabled", base, agent.Policy{Disabled: true}, false},
		{"only auto-acceptable fields", acceptable, agent.Policy{}, true},
		{"an unchanged field excluded", acceptable, agent.Policy{Excluded: []string{netmap.FieldEventHorizon}}, true},
		{"a changed field excluded", acceptable, agent.Policy{Excluded: []string{netmap.FieldWhitelist}}, false},
		{"a non-acceptable field", notAcceptable, agent.Policy{}, false},
		{"notaries", notaries, agent.Policy{}, false},
		{"disabled", acceptable, agent.Policy{Disabled: true}, false},
	} {
		if got := agent.CanAutoAccept(base, tc.update, tc.pol); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	err := agent.Policy{Excluded: []string{"whitelistedContractImplementations"}}.Validate()
	if !errors.Is(err, agent.ErrUnknownField) {
		t.Fatalf("an unknown exclusion: %v", err)
	}
}

// Corda's NetworkParametersHotloaderTest and NetworkMapTest flag-day cases.
func TestFlagDay(t *testing.T) {
	base := params()
	edit := func(f func(*netmap.NetworkParameters)) netmap.NetworkParameters {
		p := base
		p.Epoch, p.ModifiedTime = 2, base.ModifiedTime.Add(time.Hour)
		f(&p)
		return p
	}
	notary := edit(func(p *netmap.NetworkParameters) {
		p.Notaries = append(slices.Clone(p.Notaries), netmap.Notary{Identity: "O=Notary2, L=Zurich, C=CH", Validating: true})
	})
	for _, tc := range []struct {
		name     string
		update   netmap.NetworkParameters
		accepted bool
		want     agent.Action
		code     int
	}{
		{"notary change, accepted", notary, true, agent.HotLoad, 0},
		{"only epoch and modified_time", edit(func(*netmap.NetworkParameters) {}), true, agent.HotLoad, 0},
		{"notary and max message size", edit(func(p *netmap.NetworkParameters) { p.Notaries = nil; p.MaxMessageSize++ }), true, agent.Restart, 0},
		{"max message size", edit(func(p *netmap.NetworkParameters) { p.MaxMessageSize++ }), true, agent.Restart, 0},
		{"max transaction size", edit(func(p *netmap.NetworkParameters) { p.MaxTransactionSize++ }), true, agent.Restart, 0},
		{"minimum platform version", edit(func(p *netmap.NetworkParameters) { p.MinimumPlatformVersion++ }), true, agent.Restart, 0},
		{"whitelist", edit(func(p *netmap.NetworkParameters) {
			p.WhitelistedContractImplementations = map[string][]string{"a.B": {strings.Repeat("b", 64)}}
		}), true, agent.Restart, 0},
		{"notary change, not accepted", notary, false, agent.Refuse, 1},
	} {
		o := agent.FlagDay(base, tc.update, tc.accepted)
		if o.Action != tc.want || o.ExitCode != tc.code {
			t.Errorf("%s: %v exit %d, want %v exit %d", tc.name, o.Action, o.ExitCode, tc.want, tc.code)
		}
		if o.Action == agent.Refuse && o.Message != agent.MsgNotAccepted {
			t.Errorf("%s: message %q", tc.name, o.Message)
		}
	}
}

func TestAcceptLocally(t *testing.T) {
	h, other := strings.Repeat("a", 64), strings.Repeat("b", 64)
	if err := agent.Accept(h, h); err != nil {
		t.Fatal(err)
	}
	for _, pending := range []string{other, ""} {
		err := agent.Accept(h, pending)
		if !errors.Is(err, agent.ErrStaleHash) || engine.AsError(err).Code != netmap.CodeOutdatedParametersHash {
			t.Fatalf("pending %q: %v", pending, err)
		}
	}
}

func TestDecideStart(t *testing.T) {
	lim := netmap.DefaultLimits()
	mapKey, otherKey := key(t), key(t)
	old, cur := params(), params()
	cur.Epoch, cur.MaxMessageSize = 2, cur.MaxMessageSize+1
	sign := func(k crypto.Signer, p netmap.NetworkParameters) []byte {
		b, err := netmap.SignParameters(k, p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	oldFile, curFile := sign(mapKey, old), sign(mapKey, cur)
	for _, tc := range []struct {
		name         string
		in           agent.Startup
		err          error
		download     bool
		promote      bool
		hash         string
		msgHasHashes bool
	}{
		{name: "first start downloads", in: agent.Startup{Advertised: cur.Hash()}, download: true, hash: cur.Hash()},
		{name: "no file, no map", in: agent.Startup{}, err: agent.ErrNoParameters},
		{name: "the map's parameters", in: agent.Startup{Parameters: curFile, Advertised: cur.Hash()}, hash: cur.Hash()},
		{name: "map down: the file", in: agent.Startup{Parameters: oldFile}, hash: old.Hash()},
		{name: "restart after a flag day", in: agent.Startup{Parameters: oldFile, Update: curFile, Advertised: cur.Hash()}, promote: true, hash: cur.Hash()},
		{name: "file the map contradicts", in: agent.Startup{Parameters: oldFile, Advertised: cur.Hash()}, err: agent.ErrParametersMismatch, msgHasHashes: true},
		{name: "update the map contradicts", in: agent.Startup{Parameters: oldFile, Update: oldFile, Advertised: cur.Hash()}, err: agent.ErrParametersMismatch},
		{name: "not the map key's", in: agent.Startup{Parameters: sign(otherKey, cur), Advertised: cur.Hash()}, err: agent.ErrBadParametersFile},
		{name: "corrupt", in: agent.Startup{Parameters: curFile[:len(curFile)-3], Advertised: cur.Hash()}, err: agent.ErrBadParametersFile},
		{name: "corrupt update", in: agent.Startup{Parameters: oldFile, Update: []byte("x"), Advertised: cur.Hash()}, err: agent.ErrBadParametersFile},
		{name: "platform too low", in: agent.Startup{Parameters: curFile, Advertised: cur.Hash(), PlatformVersion: 3}, err: agent.ErrPlatformTooLow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.MapKey, in.Limits = mapKey.Public(), lim
			if in.PlatformVersion == 0 {
				in.PlatformVersion = 4
			}
			d, err := agent.DecideStart(in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				if tc.msgHasHashes && (!strings.Contains(err.Error(), old.Hash()) || !strings.Contains(err.Error(), cur.Hash())) {
					t.Fatalf("the message does not name both hashes: %v", err)
				}
				return
			}
			if err != nil || d.Download != tc.download || d.Promote != tc.promote || d.Hash != tc.hash {
				t.Fatalf("%+v, %v", d, err)
			}
		})
	}
	if _, err := agent.CheckDownloaded(curFile, cur.Hash(), mapKey.Public(), lim); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.CheckDownloaded(oldFile, cur.Hash(), mapKey.Public(), lim); !errors.Is(err, agent.ErrParametersMismatch) {
		t.Fatalf("the wrong parameters downloaded: %v", err)
	}
}

func nodeInfo(t testing.TB, k crypto.Signer, name string, serial int64) []byte {
	raw, err := netmap.SignNodeInfo(k, netmap.NodeInfo{Addresses: []string{"h:1"}, LegalIdentities: []string{"O=" + name + ", L=London, C=GB"},
		PlatformVersion: 4, Serial: serial})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestScanFolder(t *testing.T) {
	lim := netmap.DefaultLimits()
	a, b := key(t), key(t)
	forged := nodeInfo(t, a, "A", 9)
	forged[len(forged)-1] ^= 1
	files := []agent.File{
		{Name: "nodeInfo-3", Data: nodeInfo(t, a, "A", 3)},
		{Name: "nodeInfo-1", Data: nodeInfo(t, a, "A", 1)},
		{Name: "nodeInfo-b", Data: nodeInfo(t, b, "B", 1)},
		{Name: "nodeInfo-x.tmp", Data: nodeInfo(t, b, "B", 7)},
		{Name: "readme", Data: []byte("hi")},
		{Name: "nodeInfo-bad", Data: []byte{0xd2, 0x84}},
		{Name: "nodeInfo-forged", Data: forged},
	}
	idA, _ := netmap.NodeID(a.Public())
	check := func(s agent.FolderScan) {
		t.Helper()
		if len(s.Infos) != 2 || s.Infos[idA].Info.Serial != 3 {
			t.Fatalf("infos %+v", s.Infos)
		}
		var corrupt []string
		for _, r := range s.Corrupt {
			corrupt = append(corrupt, r.File)
			if r.Err == nil {
				t.Fatal("a corrupt file without a reason")
			}
		}
		if !slices.Equal(corrupt, []string{"nodeInfo-bad", "nodeInfo-forged"}) || !slices.Equal(s.Ignored, []string{"nodeInfo-x.tmp", "readme"}) {
			t.Fatalf("corrupt %v ignored %v", corrupt, s.Ignored)
		}
	}
	check(agent.ScanFolder(files, lim))
	slices.Reverse(files)
	check(agent.ScanFolder(files, lim))
	if agent.FileName(agent.ScanFolder(files, lim).Infos[idA]) != "nodeInfo-"+agent.ScanFolder(files, lim).Infos[idA].Hash {
		t.Fatal("file name")
	}
}

// NetworkMapUpdaterTest "remove node info file, but node in network map
// server": the file's higher serial wins, and the map's copy returns when
// the file goes.
func TestMergeHigherSerialWins(t *testing.T) {
	lim := netmap.DefaultLimits()
	a := key(t)
	verify := func(raw []byte) netmap.VerifiedNodeInfo {
		p, err := netmap.ParseNodeInfo(raw, lim)
		if err != nil {
			t.Fatal(err)
		}
		v, err := p.SelfVerify()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	server, file := verify(nodeInfo(t, a, "A", 1)), verify(nodeInfo(t, a, "A", 17))
	got := agent.Merge([]netmap.VerifiedNodeInfo{server}, map[string]netmap.VerifiedNodeInfo{file.NodeID: file})
	if got[file.NodeID].Info.Serial != 17 {
		t.Fatal("the file's higher serial lost")
	}
	got = agent.Merge([]netmap.VerifiedNodeInfo{server}, nil)
	if got[server.NodeID].Info.Serial != 1 {
		t.Fatal("the map's copy did not return")
	}
}

func TestReconcile(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		cached, inMap, keep    []string
		wantFetch, wantDropped []string
	}{
		{"empty", nil, nil, nil, nil, nil},
		{"additions", []string{"a"}, []string{"a", "b", "c"}, nil, []string{"b", "c"}, nil},
		{"removals", []string{"a", "b"}, []string{"a"}, nil, nil, []string{"b"}},
		{"own kept", []string{"own", "b"}, []string{"b"}, []string{"own"}, nil, nil},
		{"replace", []string{"a1"}, []string{"a2"}, nil, []string{"a2"}, []string{"a1"}},
	} {
		fetch, drop := agent.Reconcile(tc.cached, tc.inMap, tc.keep)
		if !slices.Equal(fetch, tc.wantFetch) || !slices.Equal(drop, tc.wantDropped) {
			t.Errorf("%s: fetch %v drop %v", tc.name, fetch, drop)
		}
	}
}

// NetworkMapUpdaterTest "emit new parameters update info on parameters
// update from network map": hash, description, deadline and parameters.
func TestAdvertised(t *testing.T) {
	lim := netmap.DefaultLimits()
	mapKey := key(t)
	cur, next := params(), params()
	next.Epoch, next.MaxMessageSize = 2, 10485761
	signed, _ := netmap.SignParameters(mapKey, next)
	up := netmap.UpdatePayload{NewParametersHash: next.Hash(), Description: "Test update", UpdateDeadline: "2026-01-02T00:00:00Z"}
	u, err := agent.Advertised(cur, up, signed, mapKey.Public(), lim, agent.Policy{})
	if err != nil || u.Hash != next.Hash() || u.Description != "Test update" || u.UpdateDeadline != up.UpdateDeadline ||
		!u.Parameters.Equal(next) || u.AutoAccepted || u.Accepted {
		t.Fatalf("%+v %v", u, err)
	}
	line, _ := json.Marshal(u)
	var back map[string]json.RawMessage
	if json.Unmarshal(line, &back) != nil || len(back) != 6 || string(back["parameters"]) != string(next.Canonical()) {
		t.Fatalf("update line %s", line)
	}
	wl := cur
	wl.Epoch, wl.WhitelistedContractImplementations = 2, map[string][]string{"a.B": {strings.Repeat("c", 64)}}
	signed, _ = netmap.SignParameters(mapKey, wl)
	up.NewParametersHash = wl.Hash()
	if u, err := agent.Advertised(cur, up, signed, mapKey.Public(), lim, agent.Policy{}); err != nil || !u.AutoAccepted {
		t.Fatalf("whitelist-only update: %+v %v", u, err)
	}
	up.NewParametersHash = next.Hash()
	if _, err := agent.Advertised(cur, up, signed, mapKey.Public(), lim, agent.Policy{}); !errors.Is(err, agent.ErrParametersMismatch) {
		t.Fatalf("parameters of another hash: %v", err)
	}
}

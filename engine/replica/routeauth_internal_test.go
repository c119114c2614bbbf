package replica

import (
	"slices"
	"testing"

	"github.com/gavelhq/gavel/engine/nodes"
)

func TestRoutePins(t *testing.T) {
	node := func(id, status string) serviceNode {
		return serviceNode{rec: nodes.Record{NodeID: id, Status: status, Role: nodes.RoleService}}
	}
	draining := ServerName("cc" + "0000000000000000")
	isPeer := func(name string) bool { return name == draining }
	seen := map[string]bool{draining: true, ServerName("dd0000000000000000"): true}
	for _, c := range []struct {
		name string
		svc  []serviceNode
		want []string
	}{
		{"none read yet", nil, nil},
		{"trusted and pending", []serviceNode{node("bb", nodes.StatusPending), node("aa", nodes.StatusTrusted)}, []string{"aa", "bb"}},
		{"retired, server still a peer: its replicas move first", []serviceNode{node("aa", nodes.StatusTrusted), node("cc0000000000000000", nodes.StatusRetired)},
			[]string{"aa", "cc0000000000000000"}},
		{"retired and seen to leave", []serviceNode{node("aa", nodes.StatusTrusted), node("dd0000000000000000", nodes.StatusRetired)}, []string{"aa"}},
		{"retired, never seen as a peer here: kept until deleted", []serviceNode{node("aa", nodes.StatusTrusted), node("ee0000000000000000", nodes.StatusRetired)},
			[]string{"aa", "ee0000000000000000"}},
		{"an unknown status", []serviceNode{node("aa", "Unknown")}, nil},
		{"listed twice", []serviceNode{node("aa", nodes.StatusTrusted), node("aa", nodes.StatusTrusted)}, []string{"aa"}},
	} {
		if got := routePins(c.svc, isPeer, seen); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestRouteURL(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:6222": "nats-route://127.0.0.1:6222",
		"0.0.0.0:6222":   "nats-route://127.0.0.1:6222",
		":6222":          "nats-route://127.0.0.1:6222",
		"[::]:6222":      "nats-route://127.0.0.1:6222",
		"10.0.0.5:7000":  "nats-route://10.0.0.5:7000",
	} {
		if got := routeURL(listen); got != want {
			t.Errorf("%s: %s, want %s", listen, got, want)
		}
	}
}

// A joiner's route listener is known before its server starts: the one of
// an earlier start, or a free port picked now.
func TestResolveRouteListen(t *testing.T) {
	dir := t.TempDir()
	if got, err := resolveRouteListen(dir, "127.0.0.1:7001"); err != nil || got != "127.0.0.1:7001" {
		t.Fatalf("an explicit port: %s %v", got, err)
	}
	got, err := resolveRouteListen(dir, "127.0.0.1:0")
	if err != nil || got == "127.0.0.1:0" || got[:10] != "127.0.0.1:" {
		t.Fatalf("a free port: %s %v", got, err)
	}
	if err := (clusterState{Listen: "127.0.0.1:7002"}).save(dir); err != nil {
		t.Fatal(err)
	}
	if got, err := resolveRouteListen(dir, "127.0.0.1:0"); err != nil || got != "127.0.0.1:7002" {
		t.Fatalf("an earlier start's: %s %v", got, err)
	}
}

package replica

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/nodes"
)

// A clustered replica's routes are authenticated: its server presents the
// node certificate (the node key) on every route, and admits a route only
// from a server whose key the ledger lists for a service node that may be
// in the cluster. A node id is the pin of its key (natslog.PinOf), so the
// pins are node ids. The witness presents its first replica's certificate.

// nodeRouteAuth is node's route identity, admitting pins.
func nodeRouteAuth(n *NodeIdentity, pins []string) *natslog.RouteAuth {
	return &natslog.RouteAuth{Cert: tls.Certificate{Certificate: [][]byte{n.Cert.Raw}, PrivateKey: n.Key, Leaf: n.Cert}, Pins: pins}
}

// clusterRouteAuth is the route auth of a clustered replica's server
// (what startClusterNATS takes in its base config), nil standalone.
func clusterRouteAuth(cluster *ClusterConfig, n *NodeIdentity) *natslog.ClusterConfig {
	if cluster == nil {
		return nil
	}
	return &natslog.ClusterConfig{Auth: nodeRouteAuth(n, nil)}
}

// withSavedPins adds the pins of earlier starts (st) to the caller's route
// auth in cfg and records the union in st; nil without route auth.
func withSavedPins(cfg *natslog.ClusterConfig, st *clusterState) *natslog.RouteAuth {
	if cfg == nil || cfg.Auth == nil {
		return nil
	}
	a := *cfg.Auth
	a.Pins = sortedUnion(st.RoutePins, a.Pins)
	st.RoutePins = a.Pins
	return &a
}

func sortedUnion(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// routePins are the node ids whose servers may route to this replica's
// server: every Pending (joining) or Trusted service node, and a Retired
// one until its server has been seen to leave the meta group (seen: the
// servers seen in it): its stream replicas are moved off first (cutting it
// at once would cost quorum), and once it is removed by peer id its key is
// refused. A server this replica never saw as a peer (a new server's view
// may not list it yet) stays pinned until the node is deleted. Sorted.
func routePins(svc []serviceNode, isPeer func(server string) bool, seen map[string]bool) []string {
	var out []string
	for _, n := range svc {
		switch n.rec.Status {
		case nodes.StatusPending, nodes.StatusTrusted:
		case nodes.StatusRetired:
			if name := ServerName(n.rec.NodeID); seen[name] && !isPeer(name) {
				continue
			}
		default:
			continue
		}
		out = append(out, n.rec.NodeID)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// reconcileRoutes pins what the ledger says (the replica's server and its
// witness), dropping the routes of servers no longer pinned, and keeps the
// pins for a restart.
func (r *Replica) reconcileRoutes(svc []serviceNode, isPeer func(string) bool) error {
	c := r.cluster
	if !isPeer(ServerName(r.node.ID)) {
		return nil // no meta leader seen yet, or this server was removed: no routes to guard
	}
	if c.state.seenPeers == nil {
		c.state.seenPeers = map[string]bool{}
	}
	for _, n := range svc {
		if name := ServerName(n.rec.NodeID); isPeer(name) {
			c.state.seenPeers[name] = true
		}
	}
	pins := routePins(svc, isPeer, c.state.seenPeers)
	if len(pins) == 0 {
		return nil // nothing read yet
	}
	// Compared with what the server admits now (a joiner's own pins may
	// have moved it since the last save), its own pin included.
	if slices.Equal(sortedUnion(pins, []string{r.node.ID}), r.embedded.RoutePins()) && slices.Equal(pins, c.state.RoutePins) {
		return nil
	}
	if err := r.embedded.SetRoutePins(pins); err != nil {
		return err
	}
	if c.witness != nil {
		if err := c.witness.SetRoutePins(pins); err != nil {
			return err
		}
	}
	added, dropped := pinDiff(c.state.RoutePins, pins)
	c.state.RoutePins = pins
	if err := c.state.save(c.dir); err != nil {
		return err
	}
	r.logger.Info("route pins reloaded: the routes admit the ledger's Pending and Trusted service nodes", slog.Int("pins", len(pins)),
		slog.Any("admitted", added), slog.Any("dropped", dropped))
	return nil
}

func pinDiff(old, next []string) (added, dropped []string) {
	for _, p := range next {
		if !slices.Contains(old, p) {
			added = append(added, p)
		}
	}
	for _, p := range old {
		if !slices.Contains(next, p) {
			dropped = append(dropped, p)
		}
	}
	return added, dropped
}

// servicePins are the node ids of the service nodes the service at c
// lists (Pending, Trusted and not yet deleted Retired ones), and whether
// node self is Trusted: what a joiner's
// routes admit (it trusts the service's answer as it trusts its
// certificate and routes).
func servicePins(ctx context.Context, c *client.Client, self string) ([]string, bool, error) {
	var out []string
	trusted := false
	// Retired ones too, until deleted: a joiner cannot tell a retired
	// server that still holds stream replicas from one removed.
	for _, status := range []string{nodes.StatusPending, nodes.StatusTrusted, nodes.StatusRetired} {
		list, err := c.Nodes(ctx, status, "")
		if err != nil {
			return nil, false, err
		}
		for _, n := range list {
			if n.Role == nodes.RoleService {
				out = append(out, n.NodeID)
				trusted = trusted || (n.NodeID == self && status == nodes.StatusTrusted)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), trusted, nil
}

// resolveRouteListen is the route listener a start will bind: listen, or
// the one of an earlier start when listen's port is 0, or else a free port
// picked now. A joiner names its route in its join, before its server
// starts.
func resolveRouteListen(dataDir, listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	if port != "0" {
		return listen, nil
	}
	if st, found, err := loadClusterState(dataDir); err != nil {
		return "", err
	} else if found && st.Listen != "" {
		if _, p, err := net.SplitHostPort(st.Listen); err == nil && p != "0" {
			return st.Listen, nil
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return net.JoinHostPort(host, strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}

// routeURL is the nats-route URL others reach listen at.
func routeURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "nats-route://" + listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "nats-route://" + net.JoinHostPort(host, port)
}

// joinPinsPoll is how often a Pending joiner asks the service which
// nodes its routes admit.
const joinPinsPoll = time.Second

// followPins keeps a Pending joiner's route pins to the service's nodes
// (the joiner has no ledger of its own yet): a joiner's server is a meta
// peer, and one that refused later joiners' routes would cost the meta
// group its full mesh, and with a server down its quorum. It stops once
// the service lists the node Trusted (the replica opened on the server
// then pins from its ledger) or when stop is closed.
func (j *Joiner) followPins(e *natslog.Embedded, pins []string, stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	tick := time.NewTicker(joinPinsPoll)
	defer tick.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		next, trusted, err := servicePins(ctx, j.client, j.node.ID)
		if err == nil && !slices.Equal(next, pins) {
			if err = e.SetRoutePins(next); err == nil {
				j.logger.Info("route pins reloaded from the service", slog.Int("pins", len(next)))
				pins = next
			}
		}
		if err != nil && ctx.Err() == nil && err.Error() != lastErr {
			j.logger.Warn("route pins not refreshed; retried", slog.Any("err", err))
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error() // logged once while it repeats
		}
		if trusted {
			return
		}
	}
}

// endPins stops followPins and waits until it has.
func (j *Joiner) endPins() {
	if j.stopPins != nil {
		close(j.stopPins)
		<-j.pinsDone
		j.stopPins = nil
	}
}

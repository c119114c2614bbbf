package replica

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"slices"
	"strconv"

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
// one while its server is still a meta peer: its stream replicas are moved
// off first (cutting it at once would cost quorum), and once it is removed
// by peer id its key is refused. Sorted.
func routePins(svc []serviceNode, isPeer func(server string) bool) []string {
	var out []string
	for _, n := range svc {
		switch n.rec.Status {
		case nodes.StatusPending, nodes.StatusTrusted:
		case nodes.StatusRetired:
			if !isPeer(ServerName(n.rec.NodeID)) {
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
	pins := routePins(svc, isPeer)
	if len(pins) == 0 || slices.Equal(pins, c.state.RoutePins) {
		return nil // nothing read yet, or nothing changed
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

// servicePins are the node ids of the Pending and Trusted service nodes of
// the service at c: what a joiner's routes admit (it trusts the service's
// answer as it trusts its certificate and routes).
func servicePins(ctx context.Context, c *client.Client) ([]string, error) {
	var out []string
	for _, status := range []string{nodes.StatusPending, nodes.StatusTrusted} {
		list, err := c.Nodes(ctx, status, "")
		if err != nil {
			return nil, err
		}
		for _, n := range list {
			if n.Role == nodes.RoleService {
				out = append(out, n.NodeID)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
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

// refreshPins admits, on a Pending joiner's routes, the service nodes the
// service lists now (a joiner has no ledger of its own yet).
func (j *Joiner) refreshPins(ctx context.Context) error {
	pins, err := servicePins(ctx, j.client)
	if err != nil {
		return err
	}
	pins = sortedUnion(pins, nil)
	if slices.Equal(pins, j.cluster.state.RoutePins) {
		return nil
	}
	if err := j.embedded.SetRoutePins(pins); err != nil {
		return err
	}
	j.cluster.state.RoutePins = pins
	return j.cluster.state.save(j.cluster.dir)
}

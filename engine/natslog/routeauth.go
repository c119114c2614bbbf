package natslog

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/gavelhq/gavel/engine"
)

// RouteAuth makes a clustered server's routes mutual TLS: the server
// presents Cert on every route it accepts or solicits, and admits a peer
// only if the peer's certificate key is pinned. A pin is the lower-case hex
// SHA-256 of the key's PKIX DER (nats-server's pinned_certs), which is
// also a gavel node id: the pins of a replica's server are the ids of the
// service nodes the ledger admits.
type RouteAuth struct {
	Cert tls.Certificate
	// Pins are the keys admitted; the server's own is always added (a
	// server may solicit its own route URL).
	Pins []string
}

// PinOf is the pin of a certificate's key.
func PinOf(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// routeTLS is the route listener's and solicitor's TLS config. Chains and
// host names are not checked (each replica's certificate is self-signed):
// the pins are what admit a peer, checked by nats-server on both sides of
// every route right after the handshake.
func routeTLS(a *RouteAuth) (*tls.Config, server.PinnedCertSet, error) {
	if len(a.Cert.Certificate) == 0 || a.Cert.PrivateKey == nil {
		return nil, nil, engine.Errorf(engine.KindInvalid, "InvalidNatsConfig", "route auth needs a certificate and its key")
	}
	leaf := a.Cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(a.Cert.Certificate[0]); err != nil {
			return nil, nil, engine.Wrap(engine.KindInvalid, "InvalidNatsConfig", err, "route certificate")
		}
	}
	pins, err := pinSet(append(slices.Clone(a.Pins), PinOf(leaf)))
	if err != nil {
		return nil, nil, err
	}
	cert := a.Cert
	cert.Leaf = leaf
	cfg := &tls.Config{
		Certificates:       []tls.Certificate{cert},
		ClientAuth:         tls.RequireAnyClientCert,
		InsecureSkipVerify: true, // the pins verify the peer, not a chain
		MinVersion:         tls.VersionTLS13,
	}
	return cfg, pins, nil
}

// pinSet checks pins and makes nats-server's set of them; never nil (a
// nil set admits everyone).
func pinSet(pins []string) (server.PinnedCertSet, error) {
	set := server.PinnedCertSet{}
	for _, p := range pins {
		if b, err := hex.DecodeString(p); err != nil || len(b) != sha256.Size || strings.ToLower(p) != p {
			return nil, engine.Errorf(engine.KindInvalid, "InvalidNatsConfig", "route pin %q is not a lower-case hex SHA-256", p)
		}
		set[p] = struct{}{}
	}
	return set, nil
}

// ErrJetStreamDisabled: the server's JetStream is off (the server was
// removed from its cluster, or JetStream stopped on a storage error).
// nats-server restarts JetStream on any reload of such a server, and a
// removed clustered server crashes doing it, so Reload, Retag and
// SetRoutePins refuse instead.
var ErrJetStreamDisabled = errors.New("the server's JetStream is disabled")

func (e *Embedded) reloadable() error {
	if !e.srv.JetStreamEnabled() {
		return engine.Wrap(engine.KindUnavailable, "JetStreamDisabled", ErrJetStreamDisabled, "server %s is not reloaded", e.Name())
	}
	return nil
}

// SetRoutePins replaces the keys the server's routes admit (its own
// stays). nats-server closes, at once, every route whose peer key is no
// longer pinned; a refused route is logged by the refusing server.
func (e *Embedded) SetRoutePins(pins []string) error {
	e.reload.Lock()
	defer e.reload.Unlock()
	a := e.cfg.Cluster.routeAuth()
	if a == nil {
		return engine.Errorf(engine.KindInvalid, "InvalidNatsConfig", "the server's routes are not authenticated")
	}
	set, err := pinSet(append(slices.Clone(pins), e.ownPin))
	if err != nil {
		return err
	}
	if err := e.reloadable(); err != nil {
		return err
	}
	next := *e.opts
	next.Cluster.TLSPinnedCerts = set
	if err := e.srv.ReloadOptions(&next); err != nil {
		return engine.Wrap(engine.KindInternal, "NatsReloadFailed", err, "cannot reload the route pins")
	}
	e.opts = &next
	return nil
}

// RoutePins are the keys the server's routes admit now, sorted (its own
// among them); nil when routes are not authenticated.
func (e *Embedded) RoutePins() []string {
	e.reload.Lock()
	defer e.reload.Unlock()
	set := e.opts.Cluster.TLSPinnedCerts
	if set == nil {
		return nil
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func (c *ClusterConfig) routeAuth() *RouteAuth {
	if c == nil {
		return nil
	}
	return c.Auth
}

// insecureRouteWarning is what nats-server logs at start for a route TLS
// config that skips chain checks; with pins every peer is checked, so the
// warning misleads and is dropped.
const insecureRouteWarning = "TLS certificate chain and hostname of solicited routes will not be verified"

package replica

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/natslog"
)

// ExternalNATS is a NATS cluster a replica runs on but did not start
// (gavel serve --nats URL --creds F): every role connects as the one user
// of Creds, so that user needs the ledger's, the feeds', the lease's and
// the requests' rights (README, "A replicated service"). The server-only
// features are off there: no storage watch (the cluster's disks are its
// operator's), no interest check on reply subjects, no client seeds.
type ExternalNATS struct {
	URL   string // nats://host:port[,nats://…]
	Creds string // an nkey user seed or a JWT .creds file
	// Options are more connect options (a TLS config, say).
	Options []nats.Option
}

// natsHost is what a replica on shared servers needs of NATS: the
// embedded server of a cluster it did not start (Config.NATS) or an
// external cluster (Config.External).
type natsHost interface {
	waitReady(ctx context.Context) error
	connect(u natslog.User, opts ...nats.Option) (*nats.Conn, error)
	// serverName is the server nc is connected to: the lease names it, so
	// that a handover can move the stream leader there.
	serverName(nc *nats.Conn) string
}

// sharedHost is the replica's natsHost: the external cluster, or else
// the embedded server (r.embedded, nil on an external cluster).
func (r *Replica) sharedHost() (natsHost, error) {
	if x := r.cfg.External; x != nil {
		auth, err := natslog.ConnectOptions(x.Creds)
		if err != nil {
			return nil, err
		}
		return externalHost{cfg: *x, auth: auth}, nil
	}
	return embeddedHost{r.embedded}, nil
}

type embeddedHost struct{ e *natslog.Embedded }

func (h embeddedHost) waitReady(ctx context.Context) error { return h.e.WaitJetStreamReady(ctx) }
func (h embeddedHost) connect(u natslog.User, opts ...nats.Option) (*nats.Conn, error) {
	return h.e.ConnectService(u, opts...)
}
func (h embeddedHost) serverName(*nats.Conn) string { return h.e.Server().Name() }

type externalHost struct {
	cfg  ExternalNATS
	auth nats.Option
}

// waitReady: an external cluster is checked before the replica opens
// (gavel serve --nats); JetStream answering is what the streams' creation
// then waits on.
func (externalHost) waitReady(context.Context) error { return nil }

func (h externalHost) connect(u natslog.User, opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{h.auth, nats.Name("gavel-" + string(u))}, h.cfg.Options...)
	nc, err := nats.Connect(h.cfg.URL, append(all, opts...)...)
	if err != nil {
		return nil, engine.Wrap(engine.KindUnavailable, "NatsUnavailable", err, "cannot connect to %s as gavel's %s", h.cfg.URL, u)
	}
	return nc, nil
}

func (externalHost) serverName(nc *nats.Conn) string { return nc.ConnectedServerName() }

// natsURL is where clients reach the replica's NATS.
func (r *Replica) natsURL() string {
	if r.embedded == nil && r.cfg.External != nil {
		return r.cfg.External.URL
	}
	return r.embedded.ClientURL()
}

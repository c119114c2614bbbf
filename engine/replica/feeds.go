package replica

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/netmap"
)

// Feed subjects on GAVEL_FEEDS (last value per subject).
const (
	SubjectFeedParams = "gavel.feed.params"
	SubjectFeedMap    = "gavel.feed.map"
	// SubjectFeedNodes + node id is a node's own feed (NodeFeed).
	SubjectFeedNodes = "gavel.feed.nodes."
)

// NodeFeed is a gavel.feed.nodes.<node_id> message: the node's current
// NodeInfo while it is in the map, and its leaving the map.
type NodeFeed struct {
	NodeID string `json:"node_id"`
	InMap  bool   `json:"in_map"`
	// NodeInfoHash is its current NodeInfo's, in the map or not (a node
	// that left keeps it, retrievable by hash).
	NodeInfoHash string `json:"node_info_hash"`
	// NodeInfo is the signed NodeInfo (base64) while in the map.
	NodeInfo []byte `json:"node_info,omitempty"`
	// TxID is the last applied entry when the change was published.
	TxID string `json:"txid"`
}

// nodeFed is what a node's feed last said.
type nodeFed struct {
	hash string
	in   bool
}

// ParamsFeed is a gavel.feed.params message: the parameters in force and
// the advertised update with its parameters, or null when none is pending.
type ParamsFeed struct {
	NetworkParametersHash string            `json:"network_parameters_hash"`
	Epoch                 int64             `json:"epoch"`
	Update                *ParamsFeedUpdate `json:"parameters_update"`
	TxID                  string            `json:"txid"`
}

// ParamsFeedUpdate is the advertised update on the feed.
type ParamsFeedUpdate struct {
	Hash           string          `json:"hash"`
	Description    string          `json:"description"`
	UpdateDeadline string          `json:"update_deadline"`
	Parameters     json.RawMessage `json:"parameters"`
}

// feeds publishes the feeds on its own connection (the feed publisher's,
// which may publish to gavel.feed.>), each message with Nats-Msg-Id = the
// txid that made it, so a republish after a restart is deduplicated.
type feeds struct {
	js    jetstream.JetStream
	batch *natslog.FeedPublisher // the node feeds, many at a time
}

func newFeeds(nc *nats.Conn) (*feeds, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	batch, err := natslog.NewFeedPublisher(nc)
	if err != nil {
		return nil, err
	}
	return &feeds{js: js, batch: batch}, nil
}

// paramsFeed is the feed message for the state as it is.
func (r *Replica) paramsFeed() (ParamsFeed, error) {
	st, done, err := r.reading()
	if err != nil {
		return ParamsFeed{}, err
	}
	defer done()
	cur, err := netmap.LoadCurrent(st)
	if err != nil {
		return ParamsFeed{}, err
	}
	f := ParamsFeed{NetworkParametersHash: cur.Hash, Epoch: cur.Epoch, TxID: cur.TxID}
	p, ok, err := netmap.LoadPending(st)
	if err != nil || !ok {
		return f, err
	}
	_, canonical, ok, err := netmap.LoadParameters(st, p.NewParametersHash)
	if err != nil || !ok {
		return f, err
	}
	f.Update = &ParamsFeedUpdate{Hash: p.NewParametersHash, Description: p.Description, UpdateDeadline: p.UpdateDeadline, Parameters: canonical}
	f.TxID = p.TxID
	return f, nil
}

// publishFeeds publishes what changed since the last publish.
func (r *Replica) publishFeeds(ctx context.Context) error {
	if r.feeds == nil {
		return nil
	}
	defer func() {
		if err := r.publishNodeFeeds(ctx); err != nil && ctx.Err() == nil {
			r.logger.Warn("node feeds", slog.Any("err", err))
		}
	}()
	pf, err := r.paramsFeed()
	if err != nil {
		return err
	}
	b, _ := json.Marshal(pf)
	if key := string(b); key != r.nm.fedParams {
		if _, err := r.feeds.js.Publish(ctx, SubjectFeedParams, b, jetstream.WithMsgID("params/"+pf.TxID)); err != nil {
			return err
		}
		r.nm.fedParams = key
	}
	sm, err := r.SignedMap(ctx)
	if err != nil {
		return err
	}
	if sm.ETag != r.nm.fedMap {
		tx, _ := r.Committed(ctx)
		msg := nats.NewMsg(SubjectFeedMap)
		msg.Data = sm.Body
		msg.Header.Set("ETag", `"`+sm.ETag+`"`)
		if _, err := r.feeds.js.PublishMsg(ctx, msg, jetstream.WithMsgID("map/"+tx.String())); err != nil {
			return err
		}
		r.nm.fedMap = sm.ETag
	}
	return nil
}

// publishNodeFeeds publishes gavel.feed.nodes.<id> for each node whose
// place in the map changed since the last call: the nodes the index
// reported, or every node that ever published after a rebuild (and on the
// publisher's first call, so a new primary states every node once).
// Messages are made under one store read, then published in atomic
// batches (one write to disk per batch), each with Nats-Msg-Id
// nodes/<node id>/<txid>.
func (r *Replica) publishNodeFeeds(ctx context.Context) error {
	changes, err := r.nodeFeedChanges(ctx)
	if err != nil {
		return r.nodeFeedsFailed(err)
	}
	for lo := 0; lo < len(changes); lo += natslog.MaxBatchMessages {
		batch := changes[lo:min(lo+natslog.MaxBatchMessages, len(changes))]
		msgs := make([]*nats.Msg, len(batch))
		for i, c := range batch {
			msgs[i] = c.msg
		}
		if err := r.feeds.batch.Publish(ctx, msgs); err != nil {
			return r.nodeFeedsFailed(err)
		}
		for _, c := range batch {
			r.nm.fedNodes[c.id] = c.fed
		}
	}
	return nil
}

// nodeFeedsFailed makes the next call compare every node again, so what
// was not acknowledged is published then.
func (r *Replica) nodeFeedsFailed(err error) error {
	r.nm.mu.Lock()
	r.nm.nodesAll = true
	r.nm.mu.Unlock()
	return err
}

// nodeChange is one node-feed message to publish.
type nodeChange struct {
	id  string
	fed nodeFed
	msg *nats.Msg
}

// nodeFeedChanges are the node-feed messages that differ from what was
// last published, made from one store read. nm.mu is held only to take
// the changed nodes' places from the index, not for the reads after.
func (r *Replica) nodeFeedChanges(ctx context.Context) ([]nodeChange, error) {
	st, done, err := r.reading()
	if err != nil {
		return nil, err
	}
	defer done()
	nm := r.nm
	type place struct {
		id, hash string
		in       bool
	}
	var places []place
	nm.mu.Lock()
	if err := r.refreshMap(ctx, st); err != nil {
		nm.mu.Unlock()
		return nil, err
	}
	all := nm.nodesAll || nm.fedNodes == nil
	if !all {
		for id := range nm.nodesDirty {
			hash, in := nm.index.Hash(id)
			places = append(places, place{id, hash, in})
		}
	} else {
		nm.index.Live(func(id, hash string) { places = append(places, place{id, hash, true}) })
	}
	nm.nodesAll = false
	clear(nm.nodesDirty)
	tip := nm.tip.String()
	nm.mu.Unlock()
	if nm.fedNodes == nil {
		nm.fedNodes = map[string]nodeFed{}
	}
	if all {
		// Every node that ever published: those out of the map too.
		live := make(map[string]bool, len(places))
		for _, p := range places {
			live[p.id] = true
		}
		err = st.Range(netmap.TableNodes, func(id string, _ []byte) bool {
			if !live[id] {
				places = append(places, place{id: id})
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	// In node id order, so that publishing is in an order the reader can
	// know: the last id's message is the last of a round.
	slices.SortFunc(places, func(a, b place) int { return strings.Compare(a.id, b.id) })
	var out []nodeChange
	for _, p := range places {
		f := nodeFed{hash: p.hash, in: p.in}
		if !p.in {
			n, ok, err := netmap.LoadNode(st, p.id)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue // never published: it has no feed
			}
			f.hash = n.Hash
		}
		if prev, ok := nm.fedNodes[p.id]; ok && prev == f {
			continue
		}
		m := NodeFeed{NodeID: p.id, InMap: p.in, NodeInfoHash: f.hash, TxID: tip}
		if p.in {
			if m.NodeInfo, err = nodeInfoByHash(st, f.hash); err != nil {
				return nil, err
			}
		}
		msg := nats.NewMsg(SubjectFeedNodes + p.id)
		msg.Data, _ = json.Marshal(m)
		msg.Header.Set(jetstream.MsgIDHeader, "nodes/"+p.id+"/"+tip)
		out = append(out, nodeChange{id: p.id, fed: f, msg: msg})
	}
	return out, nil
}

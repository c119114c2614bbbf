package replica

import (
	"context"
	"encoding/json"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine/netmap"
)

// Feed subjects on GAVEL_FEEDS (last value per subject).
const (
	SubjectFeedParams = "gavel.feed.params"
	SubjectFeedMap    = "gavel.feed.map"
)

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
	js jetstream.JetStream
}

func newFeeds(nc *nats.Conn) (*feeds, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	return &feeds{js: js}, nil
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

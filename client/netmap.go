package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/handlers"
)

// PublishNodeInfo posts a signed NodeInfo.
func (c *Client) PublishNodeInfo(ctx context.Context, signed []byte) (netmap.PublishResult, error) {
	var res netmap.PublishResult
	return res, c.postCOSE(ctx, "/network-map/publish", signed, &res)
}

// AckParameters posts a node's signed acceptance of a parameters hash.
func (c *Client) AckParameters(ctx context.Context, signed []byte) (netmap.AckResult, error) {
	var res netmap.AckResult
	return res, c.postCOSE(ctx, "/network-map/ack-parameters", signed, &res)
}

func (c *Client) postCOSE(ctx context.Context, path string, body []byte, v any) error {
	a, err := c.Do(ctx, http.MethodPost, path, "application/cose", body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(a.Body, v); err != nil {
		return engine.Wrap(engine.KindInternal, "UnexpectedAnswer", err, "%s answered %s", path, truncate(a.Body))
	}
	return nil
}

// MapAnswer is GET /network-map's answer.
type MapAnswer struct {
	Signed      []byte // nil when NotModified
	ETag        string // unquoted
	MaxAge      time.Duration
	NotModified bool
}

// NetworkMap fetches the signed map; with etag set it asks If-None-Match
// and a 304 answers NotModified.
func (c *Client) NetworkMap(ctx context.Context, etag string) (MapAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/network-map", nil)
	if err != nil {
		return MapAnswer{}, err
	}
	if etag != "" {
		req.Header.Set("If-None-Match", `"`+etag+`"`)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return MapAnswer{}, engine.Wrap(engine.KindUnavailable, "Unreachable", err, "GET /network-map")
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes))
	if err != nil {
		return MapAnswer{}, engine.Wrap(engine.KindUnavailable, "TruncatedAnswer", err, "GET /network-map")
	}
	if resp.StatusCode >= 400 {
		return MapAnswer{}, decodeError(resp.StatusCode, b)
	}
	a := MapAnswer{ETag: strings.Trim(resp.Header.Get("ETag"), `"`), NotModified: resp.StatusCode == http.StatusNotModified}
	if s, ok := strings.CutPrefix(resp.Header.Get("Cache-Control"), "max-age="); ok {
		if n, err := strconv.Atoi(s); err == nil {
			a.MaxAge = time.Duration(n) * time.Second
		}
	}
	if !a.NotModified {
		a.Signed = b
	}
	return a, nil
}

// NodeInfo fetches a signed NodeInfo by hash.
func (c *Client) NodeInfo(ctx context.Context, hash string) ([]byte, error) {
	a, err := c.Do(ctx, http.MethodGet, "/network-map/node-info/"+hash, "", nil)
	return a.Body, err
}

// NodeInfos fetches the signed NodeInfos of every node in the map.
func (c *Client) NodeInfos(ctx context.Context) ([]handlers.HashedBytes, error) {
	var v struct {
		NodeInfos []handlers.HashedBytes `json:"node_infos"`
	}
	_, err := c.getJSON(ctx, "/network-map/node-infos", &v)
	return v.NodeInfos, err
}

// SignedParameters fetches a parameters set by hash, signed by the map key.
func (c *Client) SignedParameters(ctx context.Context, hash string) ([]byte, error) {
	a, err := c.Do(ctx, http.MethodGet, "/network-map/network-parameters/"+hash, "", nil)
	return a.Body, err
}

// Acceptances lists who accepted hash ("": the pending update).
func (c *Client) Acceptances(ctx context.Context, hash string) (handlers.Acceptances, error) {
	var a handlers.Acceptances
	path := "/network-map/acceptances"
	if hash != "" {
		path += "?hash=" + hash
	}
	_, err := c.getJSON(ctx, path, &a)
	return a, err
}

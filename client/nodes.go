package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/nodes"
	"github.com/gavelhq/gavel/handlers"
	"github.com/gavelhq/gavel/projections"
)

// The node answer types.
type (
	NodeView    = projections.NodeView
	JoinResult  = nodes.JoinResult
	VersionInfo = handlers.VersionInfo
)

// Join sends a node's signed join request (nodes.SignJoin): the first
// one admits the node (Pending) or refuses it; later ones are polls.
func (c *Client) Join(ctx context.Context, signed []byte) (JoinResult, error) {
	var res JoinResult
	a, err := c.Do(ctx, http.MethodPost, "/node/join", "application/cose", signed)
	if err != nil {
		return res, err
	}
	if err := json.Unmarshal(a.Body, &res); err != nil {
		return res, engine.Wrap(engine.KindInternal, "UnexpectedAnswer", err, "POST /node/join answered %s", truncate(a.Body))
	}
	return res, nil
}

// Nodes lists the nodes, optionally of one status or host ("" for all).
func (c *Client) Nodes(ctx context.Context, status, host string) ([]NodeView, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if host != "" {
		q.Set("host", host)
	}
	path := "/node/network/nodes"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out handlers.NodeList
	_, err := c.getJSON(ctx, path, &out)
	return out.Nodes, err
}

// Node is one node.
func (c *Client) Node(ctx context.Context, id string) (NodeView, error) {
	var v NodeView
	_, err := c.getJSON(ctx, "/node/network/nodes/"+url.PathEscape(id), &v)
	return v, err
}

// RemovableNodes lists the nodes a delete would remove.
func (c *Client) RemovableNodes(ctx context.Context) ([]NodeView, error) {
	var out handlers.NodeList
	_, err := c.getJSON(ctx, "/node/network/removable_nodes", &out)
	return out.Nodes, err
}

// DeleteNode removes a retired node whose retirement is committed.
func (c *Client) DeleteNode(ctx context.Context, id string) error {
	_, err := c.Do(ctx, http.MethodDelete, "/node/network/nodes/"+url.PathEscape(id), "", nil)
	return err
}

// Version is GET /node/version.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	var v VersionInfo
	_, err := c.getJSON(ctx, "/node/version", &v)
	return v, err
}

// StepDown posts a stepdown request signed by the primary's node key
// (replica.SignStepdown): the primary hands its lease to the successor.
func (c *Client) StepDown(ctx context.Context, signed []byte) error {
	_, err := c.Do(ctx, http.MethodPost, "/node/primary/stepdown", "application/cose", signed)
	return err
}

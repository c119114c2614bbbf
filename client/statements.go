package client

import (
	"context"
	"net/http"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/handlers"
)

// Register submits a signed statement and returns the operation to poll
// (scitt-ccf-ledger's 202 answer).
func (c *Client) Register(ctx context.Context, statement []byte) (Operation, error) {
	a, err := c.Do(ctx, http.MethodPost, "/entries", "application/cose", statement)
	if err != nil {
		return Operation{}, err
	}
	return decodeOperation(a)
}

func decodeOperation(a Answer) (Operation, error) {
	var op Operation
	if err := engine.CBORDecode.Unmarshal(a.Body, &op); err != nil || op.OperationID == "" {
		return op, engine.Errorf(engine.KindInternal, "UnexpectedAnswer", "operation answer %x", a.Body)
	}
	return op, nil
}

// Operation reads an operation's state.
func (c *Client) Operation(ctx context.Context, id string) (Operation, Answer, error) {
	a, err := c.Do(ctx, http.MethodGet, "/operations/"+id, "", nil)
	if err != nil {
		return Operation{}, a, err
	}
	op, err := decodeOperation(a)
	return op, a, err
}

// WaitOperation polls an operation until it succeeds, for at most wait,
// and returns the entry's transaction id.
func (c *Client) WaitOperation(ctx context.Context, id string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		op, a, err := c.Operation(ctx, id)
		if err != nil {
			return "", err
		}
		switch op.Status {
		case handlers.OperationSucceeded:
			return op.EntryID, nil
		case handlers.OperationRunning:
			if err := c.waitUntil(ctx, a, deadline); err != nil {
				return "", err
			}
		default:
			return "", engine.Errorf(engine.KindInternal, "OperationFailed", "operation %s is %s", id, op.Status)
		}
	}
}

// RegisterAndWait registers a statement and waits, at most wait, until
// its receipt can be had; it returns the entry's transaction id.
func (c *Client) RegisterAndWait(ctx context.Context, statement []byte, wait time.Duration) (string, error) {
	op, err := c.Register(ctx, statement)
	if err != nil {
		return "", err
	}
	return c.WaitOperation(ctx, op.OperationID, wait)
}

// Receipt is the CCF COSE receipt of a transaction; it waits, at most
// wait, while the service answers that its signature is pending.
func (c *Client) Receipt(ctx context.Context, tx string, wait time.Duration) ([]byte, error) {
	return c.cose(ctx, "/entries/"+tx, wait)
}

// TransparentStatement is a registered statement with its receipt
// embedded (header 394); it waits like Receipt.
func (c *Client) TransparentStatement(ctx context.Context, tx string, wait time.Duration) ([]byte, error) {
	return c.cose(ctx, "/entries/"+tx+"/statement", wait)
}

func (c *Client) cose(ctx context.Context, path string, wait time.Duration) ([]byte, error) {
	deadline := time.Now().Add(wait)
	for {
		a, err := c.Do(ctx, http.MethodGet, path, "", nil)
		if err != nil {
			return nil, err
		}
		if a.Status == http.StatusOK {
			return a.Body, nil
		}
		if err := c.waitUntil(ctx, a, deadline); err != nil {
			return nil, err
		}
	}
}

// Network describes the service (/node/network).
func (c *Client) Network(ctx context.Context) (NetworkInfo, error) {
	var n NetworkInfo
	_, err := c.getJSON(ctx, "/node/network", &n)
	return n, err
}

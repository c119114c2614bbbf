package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
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
// its receipt can be had; it returns the entry's transaction id. When the
// request may have reached the service but no answer came back (a reset
// connection), it asks the service whether the statement landed (by its
// claims digest) before giving up: then the error is an *AmbiguousError
// and, if the statement was found, the txid is returned with it.
func (c *Client) RegisterAndWait(ctx context.Context, statement []byte, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	op, err := c.Register(ctx, statement)
	if errors.Is(err, ErrNoAnswer) {
		return c.resolve(ctx, statement, err, deadline)
	}
	if err != nil {
		return "", err
	}
	return c.WaitOperation(ctx, op.OperationID, time.Until(deadline))
}

// AmbiguousError is a registration whose answer was lost. Landed says
// whether the service holds the statement after all.
type AmbiguousError struct {
	Cause  error
	Landed bool
}

func (e *AmbiguousError) Error() string {
	if e.Landed {
		return fmt.Sprintf("no answer (%v), but the service holds the statement", e.Cause)
	}
	return fmt.Sprintf("no answer (%v), and the service does not hold the statement", e.Cause)
}

func (e *AmbiguousError) Unwrap() error { return e.Cause }

// resolveTries bounds how often a lost registration is looked for: the
// request may still be in the service's queue when the first look finds
// nothing.
const resolveTries = 10

func (c *Client) resolve(ctx context.Context, statement []byte, cause error, deadline time.Time) (string, error) {
	cd, err := cose.ClaimsDigest(statement)
	if err != nil {
		return "", cause
	}
	for i := 0; ; i++ {
		tx, ok, err := c.FindStatement(ctx, cd)
		if err == nil && ok {
			tx, err = c.WaitOperation(ctx, tx, time.Until(deadline))
			if err != nil {
				return "", err
			}
			return tx, &AmbiguousError{Cause: cause, Landed: true}
		}
		if i+1 >= resolveTries || time.Now().After(deadline) {
			if err != nil {
				return "", fmt.Errorf("%w; and whether it landed is unknown: %v", cause, err)
			}
			return "", &AmbiguousError{Cause: cause}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// FindStatement is the txid of the latest registration of the statement
// with that claims digest (GET /entries?claims_digest=, a gavel extension).
func (c *Client) FindStatement(ctx context.Context, claimsDigest engine.Digest) (string, bool, error) {
	a, err := c.Do(ctx, http.MethodGet, "/entries?claims_digest="+hex.EncodeToString(claimsDigest[:]), "", nil)
	if engine.KindOf(err) == engine.KindNotFound {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	var v struct {
		TxID string `json:"txid"`
	}
	if err := json.Unmarshal(a.Body, &v); err != nil || v.TxID == "" {
		return "", false, engine.Errorf(engine.KindInternal, "UnexpectedAnswer", "claims digest lookup answered %s", truncate(a.Body))
	}
	return v.TxID, true, nil
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

package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/govreq"
)

// Ballots a member casts without writing a script.
const (
	AcceptBallot = "export function vote(proposal, proposerId) { return true; }"
	RejectBallot = "export function vote(proposal, proposerId) { return false; }"
)

// Submit sends a signed governance envelope to a CCF write route (path
// without query) and returns the answer; a proposal answer is decoded by
// the callers below.
func (c *Client) Submit(ctx context.Context, path string, envelope []byte) (Answer, error) {
	return c.Do(ctx, http.MethodPost, c.gov(path, nil), "application/cose", envelope)
}

func (c *Client) proposalAnswer(ctx context.Context, path string, env []byte) (*Proposal, engine.TxID, error) {
	a, err := c.Submit(ctx, path, env)
	if err != nil {
		return nil, a.TxID, err
	}
	if a.Status == http.StatusNoContent {
		return nil, a.TxID, nil
	}
	var p Proposal
	if err := json.Unmarshal(a.Body, &p); err != nil || p.ProposalID == "" {
		return nil, a.TxID, engine.Errorf(engine.KindInternal, "UnexpectedAnswer", "POST %s answered %s", path, truncate(a.Body))
	}
	return &p, a.TxID, nil
}

// Propose signs and submits a proposal ({"actions": […]}).
func (c *Client) Propose(ctx context.Context, m *govreq.Member, proposal []byte) (*Proposal, engine.TxID, error) {
	env, err := m.Sign(govreq.MsgProposal, "", time.Now(), proposal)
	if err != nil {
		return nil, engine.TxID{}, err
	}
	return c.proposalAnswer(ctx, "/gov/members/proposals:create", env)
}

// Vote signs and submits a ballot script on a proposal.
func (c *Client) Vote(ctx context.Context, m *govreq.Member, proposalID, ballot string) (*Proposal, engine.TxID, error) {
	payload, _ := json.Marshal(map[string]string{"ballot": ballot})
	env, err := m.Sign(govreq.MsgBallot, proposalID, time.Now(), payload)
	if err != nil {
		return nil, engine.TxID{}, err
	}
	return c.proposalAnswer(ctx, "/gov/members/proposals/"+proposalID+"/ballots/"+m.ID+":submit", env)
}

// Withdraw signs and submits a withdrawal. An unknown proposal answers
// no content (nil proposal, no error), as in CCF.
func (c *Client) Withdraw(ctx context.Context, m *govreq.Member, proposalID string) (*Proposal, engine.TxID, error) {
	env, err := m.Sign(govreq.MsgWithdrawal, proposalID, time.Now(), nil)
	if err != nil {
		return nil, engine.TxID{}, err
	}
	return c.proposalAnswer(ctx, "/gov/members/proposals/"+proposalID+":withdraw", env)
}

// Proposals lists every proposal (only those in state, if not "": gavel's
// extension), following nextLink page by page.
func (c *Client) Proposals(ctx context.Context, state string) ([]*Proposal, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	var all []*Proposal
	err := c.pages(ctx, "/gov/members/proposals", q, func(b json.RawMessage) error {
		var ps []*Proposal
		err := json.Unmarshal(b, &ps)
		all = append(all, ps...)
		return err
	})
	return all, err
}

// Page is one page of a CCF list.
type Page struct {
	Value    json.RawMessage `json:"value"`
	NextLink string          `json:"nextLink,omitempty"`
}

// ListPage fetches one page: path is a list route (its first page) or a
// nextLink the service gave.
func (c *Client) ListPage(ctx context.Context, path string) (Page, error) {
	var p Page
	_, err := c.getJSON(ctx, path, &p)
	return p, err
}

func (c *Client) pages(ctx context.Context, path string, q url.Values, each func(json.RawMessage) error) error {
	if c.pageSize > 0 {
		q.Set("maxpagesize", itoa(c.pageSize))
	}
	link := c.gov(path, q)
	for link != "" {
		p, err := c.ListPage(ctx, link)
		if err != nil {
			return err
		}
		if err := each(p.Value); err != nil {
			return engine.Wrap(engine.KindInternal, "UnexpectedAnswer", err, "GET %s", link)
		}
		link = p.NextLink
	}
	return nil
}

// Proposal is one proposal.
func (c *Client) Proposal(ctx context.Context, id string) (*Proposal, error) {
	var p Proposal
	_, err := c.getJSON(ctx, c.gov("/gov/members/proposals/"+id, nil), &p)
	return &p, err
}

// Actions is a proposal's body ({"actions": […]}), verbatim.
func (c *Client) Actions(ctx context.Context, id string) (json.RawMessage, error) {
	a, err := c.Do(ctx, http.MethodGet, c.gov("/gov/members/proposals/"+id+"/actions", nil), "", nil)
	return a.Body, err
}

// Ballot is a member's ballot script on a proposal.
func (c *Client) Ballot(ctx context.Context, proposalID, memberID string) (string, error) {
	a, err := c.Do(ctx, http.MethodGet, c.gov("/gov/members/proposals/"+proposalID+"/ballots/"+memberID, nil), "", nil)
	return string(a.Body), err
}

// Members lists every member, page by page.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var all []Member
	err := c.pages(ctx, "/gov/service/members", url.Values{}, func(b json.RawMessage) error {
		var ms []Member
		err := json.Unmarshal(b, &ms)
		all = append(all, ms...)
		return err
	})
	return all, err
}

// Member is one member.
func (c *Client) Member(ctx context.Context, id string) (Member, error) {
	var m Member
	_, err := c.getJSON(ctx, c.gov("/gov/service/members/"+id, nil), &m)
	return m, err
}

// StateDigest is the digest a member must acknowledge.
func (c *Client) StateDigest(ctx context.Context, memberID string) (StateDigest, error) {
	var d StateDigest
	_, err := c.getJSON(ctx, c.gov("/gov/members/state-digests/"+memberID, nil), &d)
	return d, err
}

// UpdateStateDigest asks for a fresh digest to acknowledge (signed
// state_digest request).
func (c *Client) UpdateStateDigest(ctx context.Context, m *govreq.Member) (StateDigest, []byte, error) {
	env, err := m.Sign(govreq.MsgStateDigest, "", time.Now(), nil)
	if err != nil {
		return StateDigest{}, nil, err
	}
	a, err := c.Submit(ctx, "/gov/members/state-digests/"+m.ID+":update", env)
	if err != nil {
		return StateDigest{}, nil, err
	}
	var d StateDigest
	if err := json.Unmarshal(a.Body, &d); err != nil || d.StateDigest == "" {
		return d, nil, engine.Errorf(engine.KindInternal, "UnexpectedAnswer", "state digest update answered %s", truncate(a.Body))
	}
	return d, a.Body, nil
}

// AckStateDigest signs digest (the :update answer, as CCF's clients sign
// it) as the member's acknowledgement.
func (c *Client) AckStateDigest(ctx context.Context, m *govreq.Member, digest []byte) (engine.TxID, error) {
	env, err := m.Sign(govreq.MsgAck, "", time.Now(), digest)
	if err != nil {
		return engine.TxID{}, err
	}
	a, err := c.Submit(ctx, "/gov/members/state-digests/"+m.ID+":ack", env)
	return a.TxID, err
}

// Activate makes an Accepted member Active: update, then ack.
func (c *Client) Activate(ctx context.Context, m *govreq.Member) (engine.TxID, error) {
	_, body, err := c.UpdateStateDigest(ctx, m)
	if err != nil {
		return engine.TxID{}, err
	}
	return c.AckStateDigest(ctx, m, body)
}

// Constitution is the constitution module in force.
func (c *Client) Constitution(ctx context.Context) (string, error) {
	a, err := c.Do(ctx, http.MethodGet, c.gov("/gov/service/constitution", nil), "", nil)
	return string(a.Body), err
}

// ServiceInfo is CCF's service information.
func (c *Client) ServiceInfo(ctx context.Context) (ServiceInfo, error) {
	var v ServiceInfo
	_, err := c.getJSON(ctx, c.gov("/gov/service/info", nil), &v)
	return v, err
}

// JSApp describes the application bundle's endpoints.
func (c *Client) JSApp(ctx context.Context) (JSApp, error) {
	var v JSApp
	_, err := c.getJSON(ctx, c.gov("/gov/service/javascript-app", nil), &v)
	return v, err
}

// JoinPolicies is what joining nodes must present.
func (c *Client) JoinPolicies(ctx context.Context) (JoinPolicies, error) {
	var v JoinPolicies
	_, err := c.getJSON(ctx, c.gov("/gov/service/join-policy", nil), &v)
	return v, err
}

// TransactionStatus is CCF's status of a transaction (Unknown, Pending,
// Committed, Invalid).
func (c *Client) TransactionStatus(ctx context.Context, tx string) (string, error) {
	var v struct {
		Status string `json:"status"`
	}
	_, err := c.getJSON(ctx, c.gov("/gov/service/transactions/"+tx, nil), &v)
	return v.Status, err
}

// Commit is the last committed transaction id.
func (c *Client) Commit(ctx context.Context) (string, error) {
	var v struct {
		TransactionID string `json:"transactionId"`
	}
	_, err := c.getJSON(ctx, c.gov("/gov/service/transactions/commit", nil), &v)
	return v.TransactionID, err
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

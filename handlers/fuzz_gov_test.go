package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/handlers"
)

// FuzzGovRequests sends arbitrary bodies to every governance write route.
// Only a request signed by a member can change anything; everything else
// must get a 4xx JSON error and leave the ledger as it was.
func FuzzGovRequests(f *testing.F) {
	fx := newGovFixture(f, 1)
	m := fx.members[0]
	p, _, err := fx.c.Propose(context.Background(), m, []byte(`{"actions":[{"name":"remove_node_join_policy","args":{}}]}`))
	if err != nil {
		f.Fatal(err)
	}
	routes := []string{
		gov_("/gov/members/proposals:create"),
		gov_("/gov/members/proposals/" + p.ProposalID + "/ballots/" + m.ID + ":submit"),
		gov_("/gov/members/proposals/" + p.ProposalID + ":withdraw"),
		gov_("/gov/members/state-digests/" + m.ID + ":update"),
		gov_("/gov/members/state-digests/" + m.ID + ":ack"),
	}
	f.Add(uint8(0), []byte{})
	f.Add(uint8(0), []byte(`{"actions":[]}`))
	f.Add(uint8(1), fx.sign(m, govreq.MsgProposal, "", []byte(`{}`))[:40])
	f.Add(uint8(2), []byte{0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40})
	f.Add(uint8(1), []byte{0xd2, 0x84, 0x58, 0x02, 0xa1, 0x01, 0xa0, 0xf6, 0x40})
	store := fx.r.Store()
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		before := store.Meta().Seqno
		status, h, resp := fx.do("POST", routes[int(route)%len(routes)], "application/cose", body)
		var eb handlers.ErrorBody
		if status < 400 || status >= 500 || h.Get("Content-Type") != "application/json" ||
			json.Unmarshal(resp, &eb) != nil || eb.Error.Code == "" {
			t.Fatalf("status %d for %x: %s", status, body, resp)
		}
		for s := before + 1; s <= store.Meta().Seqno; s++ {
			if rec, _, _ := store.Leaf(s); rec.Kind != engine.KindSignature {
				t.Fatalf("a refused body wrote a %s entry", rec.Kind)
			}
		}
		if status == http.StatusUnauthorized && eb.Error.Code != "InvalidAuthenticationInfo" {
			t.Fatalf("401 with code %s", eb.Error.Code)
		}
	})
}

// FuzzPageToken sends arbitrary skipTokens to the paged lists: the
// service answers a page or 400 InvalidQueryParameterValue, never more.
func FuzzPageToken(f *testing.F) {
	fx := newGovFixture(f, 3)
	ctx := context.Background()
	for _, m := range fx.members {
		if _, _, err := fx.c.Propose(ctx, m, []byte(`{"actions":[{"name":"remove_node_join_policy","args":{}}]}`)); err != nil {
			f.Fatal(err)
		}
	}
	page, err := fx.c.ListPage(ctx, gov_("/gov/members/proposals?maxpagesize=1"))
	if err != nil || page.NextLink == "" {
		f.Fatalf("first page %+v %v", page, err)
	}
	u, _ := url.Parse(page.NextLink)
	f.Add(u.Query().Get("skipToken"))
	f.Fuzz(func(t *testing.T, token string) {
		for _, path := range []string{"/gov/members/proposals", "/gov/service/members"} {
			status, _, body := fx.do("GET", gov_(path+"?maxpagesize=1&skipToken="+url.QueryEscape(token)), "", nil)
			var eb handlers.ErrorBody
			if status == http.StatusOK {
				continue
			}
			if status != http.StatusBadRequest || json.Unmarshal(body, &eb) != nil || eb.Error.Code != "InvalidQueryParameterValue" {
				t.Fatalf("%s token %q: %d %s", path, token, status, body)
			}
		}
	})
}

package client

import (
	"net/http"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/handlers"
)

// TestKindOfInvertsStatus: an error's Kind survives the trip through its
// HTTP status, for every Kind the service answers with an error status.
func TestKindOfInvertsStatus(t *testing.T) {
	for k := engine.KindInternal; k <= engine.KindUnavailable; k++ {
		if k == engine.KindPending {
			continue // 202: an answer to poll, not an error
		}
		status := handlers.Status(&engine.Error{Kind: k, Code: "X"})
		if got := kindOf(status); got != k {
			t.Errorf("kind %d → %d → kind %d", k, status, got)
		}
	}
}

func TestDecodeError(t *testing.T) {
	for _, tc := range []struct {
		status     int
		body, code string
		kind       engine.Kind
	}{
		{401, `{"error":{"code":"InvalidAuthenticationInfo","message":"Signer is not an ACTIVE member"}}`, "InvalidAuthenticationInfo", engine.KindUnauthorized},
		{404, `{"error":{"code":"ProposalNotFound","message":"m"}}`, "ProposalNotFound", engine.KindNotFound},
		{502, `<html>bad gateway</html>`, "HTTP502", engine.KindInternal},
		{400, `{"error":{}}`, "HTTP400", engine.KindInvalid},
		{http.StatusTooManyRequests, ``, "HTTP429", engine.KindUnavailable},
	} {
		e := engine.AsError(decodeError(tc.status, []byte(tc.body)))
		if e.Code != tc.code || e.Kind != tc.kind || e.Message == "" {
			t.Errorf("%d %s: %+v", tc.status, tc.body, e)
		}
	}
}

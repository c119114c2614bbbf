package didx509_test

import (
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/didx509"
	"github.com/gavelhq/gavel/engine/issuer"
)

// A remembered resolution must not outlive the chain's validity, nor
// answer for another DID or chain.
func TestResolutionCacheKeepsTimeAndIdentity(t *testing.T) {
	start := time.Now().Add(-time.Hour)
	iss, err := issuer.New("ES256", start)
	if err != nil {
		t.Fatal(err)
	}
	other, err := issuer.New("ES256", start)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := didx509.Resolve(iss.DID, iss.Chain(), time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		did   string
		at    time.Time
		chain bool // true: iss's chain, false: other's
	}{
		{"after expiry", iss.DID, start.AddDate(2, 0, 0), true},
		{"before validity", iss.DID, start.Add(-time.Minute), true},
		{"other DID, same chain", other.DID, time.Now(), true},
		{"same DID, other chain", iss.DID, time.Now(), false},
	} {
		chain := iss.Chain()
		if !tc.chain {
			chain = other.Chain()
		}
		if _, err := didx509.Resolve(tc.did, chain, tc.at); err == nil {
			t.Errorf("%s: resolved from the cache", tc.name)
		}
	}
	if _, err := didx509.Resolve(iss.DID, iss.Chain(), time.Now()); err != nil {
		t.Fatalf("cached resolution lost: %v", err)
	}
}

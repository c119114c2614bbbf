package natslog

import (
	"bytes"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/gavelhq/gavel/engine"
)

// FuzzParseBatchAck: any answer parses to a sequence or an error, never
// both missing, and an error maps to a typed engine error.
func FuzzParseBatchAck(f *testing.F) {
	f.Add([]byte(`{"stream":"GAVEL_LEDGER","seq":7,"batch":"abc","count":7}`))
	f.Add([]byte(`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"},"stream":"GAVEL_LEDGER","seq":0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ack, err := parseBatchAck(data)
		if err != nil {
			return
		}
		if ack.Error == nil {
			if ack.Stream == "" || ack.Seq == 0 {
				t.Fatalf("accepted %q without stream sequence", data)
			}
			return
		}
		var typed *engine.Error
		if mapped := batchAPIError(ack.Error, 1); !errors.As(mapped, &typed) || typed.Code == "" {
			t.Fatalf("untyped error %v for %q", mapped, data)
		}
	})
}

// FuzzActualLastSequence: the number after "wrong last sequence: " comes
// back exactly; anything else is refused or read as that number.
func FuzzActualLastSequence(f *testing.F) {
	f.Add("", uint64(5), "")
	f.Add("nats: ", uint64(0), "x")
	f.Fuzz(func(t *testing.T, prefix string, n uint64, suffix string) {
		got, ok := actualLastSequence(prefix + "wrong last sequence: " + strconv.FormatUint(n, 10) + suffix)
		if strings.Contains(prefix, "wrong last sequence: ") {
			return // the first marker wins; only no-panic is checked
		}
		if suffix == "" && (!ok || got != n) {
			t.Fatalf("%q %d: got %d, %v", prefix, n, got, ok)
		}
		if ok && suffix != "" {
			if _, err := strconv.ParseUint(strconv.FormatUint(n, 10)+suffix, 10, 64); err != nil {
				t.Fatalf("accepted a number with suffix %q", suffix)
			}
		}
	})
}

var ledgerSubjectPattern = regexp.MustCompile(`^gavel\.ledger\.([a-z][a-z0-9_]{0,31})$`)

// FuzzKindOfSubject agrees with the regular expression and round-trips.
func FuzzKindOfSubject(f *testing.F) {
	f.Add("gavel.ledger.statement")
	f.Add("gavel.ledger.Gov")
	f.Fuzz(func(t *testing.T, subject string) {
		kind, ok := KindOfSubject(subject)
		m := ledgerSubjectPattern.FindStringSubmatch(subject)
		if ok != (m != nil) || (ok && (kind != m[1] || LedgerSubject(kind) != subject)) {
			t.Fatalf("KindOfSubject(%q) = %q, %v; pattern says %v", subject, kind, ok, m)
		}
	})
}

// FuzzClassifyCredentials: a .creds marker always means JWT; a seed
// verdict always holds a user seed.
func FuzzClassifyCredentials(f *testing.F) {
	f.Add([]byte("SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4\n"))
	f.Add([]byte("-----BEGIN NATS USER JWT-----\neyJ0\n------END NATS USER JWT------\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		kind := classifyCredentials(data)
		if bytes.Contains(data, jwtMarker) && kind != credentialsJWT {
			t.Fatalf("creds marker not recognised in %q", data)
		}
		if kind == credentialsNkeySeed {
			kp, err := nkeys.ParseDecoratedNKey(data)
			if err != nil {
				t.Fatalf("seed verdict, but %v", err)
			}
			if pub, err := kp.PublicKey(); err != nil || !nkeys.IsValidPublicUserKey(pub) {
				t.Fatalf("seed verdict for a non-user key %q", pub)
			}
		}
	})
}

package constitution

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
)

var entryTime = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

var (
	hex64 = strings.Repeat("0123456789abcdef", 4)
	hex96 = strings.Repeat("0123456789abcdef", 6)
)

// member is a test member: a fresh self-signed P-256 certificate.
type member struct {
	cert string
	id   string
}

var (
	membersOnce sync.Once
	testMembers []member
)

func members(t testing.TB, n int) []member {
	t.Helper()
	membersOnce.Do(func() {
		for i := range 5 {
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				panic(err)
			}
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(int64(i + 1)),
				Subject:      pkix.Name{CommonName: "member" + string(rune('0'+i))},
				NotBefore:    entryTime.Add(-time.Hour),
				NotAfter:     entryTime.Add(365 * 24 * time.Hour),
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
			if err != nil {
				panic(err)
			}
			sum := sha256.Sum256(der)
			testMembers = append(testMembers, member{
				cert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
				id:   hex.EncodeToString(sum[:]),
			})
		}
	})
	return testMembers[:n]
}

// stateWithMembers is a state holding the given members as Active.
func stateWithMembers(t testing.TB, ms []member) MemState {
	t.Helper()
	st := MemState{}
	for _, m := range ms {
		putJSON(t, st, TableMembers, m.id, map[string]any{"cert": m.cert, "status": MemberActive, "member_data": nil})
	}
	return st
}

func putJSON(t testing.TB, st MemState, table, key string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	st.Apply(engine.WriteSet{{Table: table, Key: key, Value: b}})
}

// env has the widest safety net: a loaded machine must reach the budget.
func env(st StateReader) Env {
	return Env{Time: entryTime, State: st, Limits: Limits{Timeout: MaxTimeout}}
}

func defaultConstitution(t testing.TB) *Constitution {
	t.Helper()
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func proposal(t testing.TB, actions ...map[string]any) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"actions": actions})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func action(name string, args map[string]any) map[string]any {
	if args == nil {
		return map[string]any{"name": name}
	}
	return map[string]any{"name": name, "args": args}
}

// codeOf is the typed error code of err, or "" for nil.
func codeOf(err error) string {
	if err == nil {
		return ""
	}
	var e *engine.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return "untyped: " + err.Error()
}

func ballot(t testing.TB, src string) *Ballot {
	t.Helper()
	b, err := CompileBallot(src)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package netsplit

import (
	"testing"
	"time"
)

// The proxies carry every route: isolating a server leaves it without
// routes and the others with each other only, and a heal brings every
// route back through the servers' own retries.
func TestIsolateAndHeal(t *testing.T) {
	c := Start(t, 3)
	routes := func(want ...int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := make([]int, len(c.Servers))
			same := true
			for i, e := range c.Servers {
				got[i] = e.Server().NumRoutes()
				same = same && got[i] == want[i]
			}
			if same {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("routes per server %v, want %v", got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	routes(2, 2, 2)
	c.Isolate(0)
	routes(0, 1, 1)
	if c.Dropped() < 2 {
		t.Fatalf("the cut closed %d routes, want at least the two of server 0", c.Dropped())
	}
	c.Heal()
	routes(2, 2, 2)
}

func TestConnectName(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"CONNECT {\"echo\":true,\"name\":\"NABC\",\"cluster\":\"x\"}\r\n", "NABC"},
		{"CONNECT {}\r\n", ""},
		{"INFO {\"name\":\"NABC\"}\r\n", ""},
		{"CONNECT not json\r\n", ""},
	} {
		if got := connectName([]byte(tc.line)); got != tc.want {
			t.Errorf("connectName(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

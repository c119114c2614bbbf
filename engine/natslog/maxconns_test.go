package natslog_test

import (
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine/natslog"
)

// MaxConns caps the client connections: past it a connection is refused,
// and a freed slot is taken again.
func TestEmbeddedMaxConns(t *testing.T) {
	e, err := natslog.StartEmbedded(natslog.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	a, err := e.ConnectReplica()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := e.ConnectClient()
	if err != nil {
		t.Fatal(err)
	}
	// The server answers "maximum connections exceeded" and hangs up; the
	// client may see either first.
	if c, err := e.ConnectClient(); err == nil {
		c.Close()
		t.Fatal("a third connection was accepted")
	}
	b.Close()
	deadline := time.Now().Add(10 * time.Second)
	for { // the server notices b's close asynchronously
		c, err := e.ConnectClient()
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection after one was freed: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

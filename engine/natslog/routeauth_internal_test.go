package natslog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// nats-server's warning about unverified route chains is dropped (the pins
// check every peer); every other warning passes.
func TestSlogAdapterDropsTheInsecureRouteWarning(t *testing.T) {
	var buf bytes.Buffer
	a := slogAdapter{slog.New(slog.NewTextHandler(&buf, nil))}
	a.Warnf("%s", insecureRouteWarning+". DO NOT USE IN PRODUCTION!")
	a.Warnf("route %s slow", "x")
	if out := buf.String(); strings.Contains(out, "DO NOT USE") || !strings.Contains(out, "route x slow") {
		t.Fatalf("log: %q", out)
	}
}

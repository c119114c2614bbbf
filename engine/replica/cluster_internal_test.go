package replica

import (
	"encoding/json"
	"testing"
)

// FuzzClusterNodeData: a node's node_data comes from its join, so any
// bytes; reading it never panics, and what it accepts names a server and
// encodes back to what it read.
func FuzzClusterNodeData(f *testing.F) {
	f.Add([]byte(`{"gavel_cluster":{"server_name":"gavel-0123456789abcdef","route":"nats-route://127.0.0.1:6222","nats_users":{"member":"UABC"},"seal_key":"AAAA"}}`))
	f.Add([]byte(`{"gavel_cluster":null}`))
	f.Add([]byte(`{"other":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, ok := clusterDataOf(json.RawMessage(raw))
		if !ok {
			return
		}
		if d.ServerName == "" {
			t.Fatal("accepted cluster data without a server name")
		}
		b, err := json.Marshal(nodeDataEnvelope{Cluster: d})
		if err != nil {
			t.Fatal(err)
		}
		if again, ok := clusterDataOf(b); !ok || again.ServerName != d.ServerName || again.Route != d.Route || again.SealKey != d.SealKey {
			t.Fatalf("re-read %+v as %+v", d, again)
		}
	})
}

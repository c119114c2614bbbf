package projections_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/nodes"
	"github.com/gavelhq/gavel/projections"
)

func TestTrustedHostDataChecksSecurityPolicy(t *testing.T) {
	policy := "package policy\nallow := true"
	sum := sha256.Sum256([]byte(policy))
	good := hex.EncodeToString(sum[:])
	f := nodes.NewFold()
	f.Observe(&engine.Entry{Seqno: 1, Kind: engine.KindGovProposal, Writes: engine.WriteSet{
		{Table: nodes.TableSNPHostData, Key: good, Value: mustJSON(map[string]string{"security_policy": policy})},
		{Table: nodes.TableSNPHostData, Key: "00" + good[2:], Value: mustJSON(map[string]string{"security_policy": policy})},
		{Table: nodes.TableVirtualHostData, Key: good, Value: []byte(`{}`)},
	}.Canonical()})
	got, err := projections.Nodes{Model: f.Model}.TrustedHostData()
	if err != nil || len(got) != 3 {
		t.Fatalf("%+v %v", got, err)
	}
	want := []string{"sev-snp/00" + good[2:] + "/false", "sev-snp/" + good + "/true", "virtual/" + good + "/false"}
	for i, v := range got {
		if s := fmt.Sprintf("%s/%s/%v", v.Format, v.HostData, v.PolicyMatches); s != want[i] {
			t.Errorf("%d: %s, want %s", i, s, want[i])
		}
	}
}

// fleet is a read model of nodes n0…n9: even ones Trusted, odd ones
// Retired (a signature covers n1…n7's retirement, not n9's); n3 is the
// primary.
func fleet(t *testing.T) projections.Nodes {
	f := nodes.NewFold()
	var ws engine.WriteSet
	for i := range 9 {
		status := nodes.StatusTrusted
		if i%2 == 1 {
			status = nodes.StatusRetired
		}
		ws = append(ws, engine.Write{Table: engine.TableNodes, Key: fmt.Sprintf("n%d", i),
			Value: mustJSON(nodes.Record{NodeID: fmt.Sprintf("n%d", i), Status: status, Address: fmt.Sprintf("h%d.example:44%d", i%3, i)})})
	}
	f.Observe(&engine.Entry{Seqno: 1, Kind: engine.KindGovProposal, Writes: ws.Canonical()})
	f.Observe(&engine.Entry{Seqno: 2, Kind: engine.KindSignature})
	f.Observe(&engine.Entry{Seqno: 3, Kind: engine.KindGovProposal, Writes: engine.WriteSet{
		{Table: engine.TableNodes, Key: "n9", Value: mustJSON(nodes.Record{NodeID: "n9", Status: nodes.StatusRetired})}}})
	if f.Err() != nil {
		t.Fatal(f.Err())
	}
	return projections.Nodes{Model: f.Model, Primary: "n3"}
}

func names(vs []projections.NodeView) string {
	var out []string
	for _, v := range vs {
		out = append(out, v.NodeID)
	}
	return strings.Join(out, " ")
}

func TestNodeListsPage(t *testing.T) {
	n := fleet(t)
	for _, tc := range []struct {
		status, host string
		page         projections.Page
		want         string
		more         bool
	}{
		{"", "", projections.Page{}, "n0 n1 n2 n3 n4 n5 n6 n7 n8 n9", false},
		{"", "", projections.Page{Limit: 4}, "n0 n1 n2 n3", true},
		{"", "", projections.Page{After: "n3", Limit: 4}, "n4 n5 n6 n7", true},
		{"", "", projections.Page{After: "n7", Limit: 4}, "n8 n9", false},
		{nodes.StatusTrusted, "", projections.Page{}, "n0 n2 n4 n6 n8", false},
		{nodes.StatusTrusted, "", projections.Page{After: "n2", Limit: 2}, "n4 n6", true},
		{nodes.StatusRetired, "", projections.Page{}, "n1 n3 n5 n7 n9", false},
		{nodes.StatusPending, "", projections.Page{}, "", false},
		{"", "h1.example", projections.Page{}, "n1 n4 n7", false},
		{"", "h1.example:444", projections.Page{}, "n4", false},
		{nodes.StatusRetired, "h1.example", projections.Page{Limit: 1}, "n1", true},
	} {
		got, more, err := n.List(tc.status, tc.host, tc.page)
		if err != nil || names(got) != tc.want || more != tc.more {
			t.Errorf("List(%q, %q, %+v) = %q more=%v %v, want %q more=%v", tc.status, tc.host, tc.page, names(got), more, err, tc.want, tc.more)
		}
	}
	// n3 is the primary, n9's retirement is not signed yet.
	if got, more, _ := n.Removable(projections.Page{}); names(got) != "n1 n5 n7" || more {
		t.Fatalf("removable %q %v", names(got), more)
	}
	if got, more, _ := n.Removable(projections.Page{After: "n1", Limit: 1}); names(got) != "n5" || !more {
		t.Fatalf("removable page %q %v", names(got), more)
	}
	if v, err := n.Get("n3"); err != nil || !v.Primary || v.RetiredCommitted || v.LastWritten != 1 {
		t.Fatalf("primary %+v %v", v, err)
	}
	if v, err := n.Get("n5"); err != nil || !v.RetiredCommitted || string(v.NodeData) != "null" {
		t.Fatalf("n5 %+v %v", v, err)
	}
	if _, err := n.Get("n10"); engine.AsError(err).Code != nodes.CodeNodeNotFound {
		t.Fatalf("unknown node: %v", err)
	}
	s, err := n.Snapshot()
	if err != nil || s.Seqno != 3 || s.LastSignature != 2 || len(s.Nodes) != 10 || len(s.Removable) != 3 || s.JoinPolicy != nil || len(s.ModelSHA256) != 64 {
		t.Fatalf("snapshot %+v %v", s, err)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

package projections_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/nodes"
	"github.com/gavelhq/gavel/projections"
)

func TestTrustedHostDataChecksSecurityPolicy(t *testing.T) {
	policy := "package policy\nallow := true"
	sum := sha256.Sum256([]byte(policy))
	good := hex.EncodeToString(sum[:])
	st := constitution.MemState{}
	st.Apply(engine.WriteSet{
		{Table: nodes.TableSNPHostData, Key: good, Value: mustJSON(map[string]string{"security_policy": policy})},
		{Table: nodes.TableSNPHostData, Key: "00" + good[2:], Value: mustJSON(map[string]string{"security_policy": policy})},
		{Table: nodes.TableVirtualHostData, Key: good, Value: []byte(`{}`)},
	})
	got, err := projections.Nodes{State: st, Fold: nodes.NewFold()}.TrustedHostData()
	if err != nil || len(got) != 3 {
		t.Fatalf("%+v %v", got, err)
	}
	want := map[string]bool{"sev-snp/" + good: true, "sev-snp/00" + good[2:]: false, "virtual/" + good: false}
	for _, v := range got {
		if m, ok := want[v.Format+"/"+v.HostData]; !ok || m != v.PolicyMatches {
			t.Errorf("%+v", v)
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

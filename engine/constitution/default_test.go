package constitution

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gavelhq/gavel/engine"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// jsonOf is JSON as JSON.stringify writes it (no HTML escaping; Go maps
// come out with sorted keys).
func jsonOf(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// Each action of the default constitution: a valid proposal, accepted, and
// the exact write set its apply produces.
func TestDefaultActionsWriteSets(t *testing.T) {
	ms := members(t, 3)
	newcomer := members(t, 4)[3]
	nodeID := sha256Hex("node")
	policy := "package policy"
	constitutionSrc, err := DefaultModule()
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]any{"minimum_platform_version": 4, "notaries": []any{map[string]any{"identity": "O=Notary", "validating": false}},
		"max_message_size": 10485760, "max_transaction_size": 524288000, "epoch": 2}
	deadline := entryTime.Add(24 * time.Hour).Format(time.RFC3339)

	base := func() MemState {
		st := stateWithMembers(t, ms)
		putJSON(t, st, TableNodes, nodeID, map[string]any{"status": NodePending, "role": "participant"})
		putJSON(t, st, TableSNPHostData, sha256Hex(policy), map[string]any{"security_policy": policy})
		putJSON(t, st, TableJoinPolicy, "", "export function apply() { return true }")
		return st
	}
	tests := []struct {
		name string
		args map[string]any
		want engine.WriteSet
	}{
		{"set_member", map[string]any{"cert": newcomer.cert, "member_data": map[string]any{"name": "dora"}},
			engine.WriteSet{{Table: TableMembers, Key: newcomer.id, Value: jsonOf(t, struct {
				Cert       string         `json:"cert"`
				Status     string         `json:"status"`
				MemberData map[string]any `json:"member_data"`
			}{newcomer.cert, "Accepted", map[string]any{"name": "dora"}})}}},
		{"remove_member", map[string]any{"member_id": ms[2].id},
			engine.WriteSet{{Table: TableMembers, Key: ms[2].id, Delete: true}}},
		{"set_constitution", map[string]any{"constitution": constitutionSrc},
			engine.WriteSet{{Table: TableConstitution, Key: "", Value: jsonOf(t, constitutionSrc)}}},
		{"add_snp_host_data", map[string]any{"host_data": sha256Hex("other policy"), "security_policy": "other policy"},
			engine.WriteSet{{Table: TableSNPHostData, Key: sha256Hex("other policy"), Value: []byte(`{"security_policy":"other policy"}`)}}},
		{"add_snp_host_data", map[string]any{"host_data": hex64},
			engine.WriteSet{{Table: TableSNPHostData, Key: hex64, Value: []byte(`{"security_policy":""}`)}}},
		{"remove_snp_host_data", map[string]any{"host_data": sha256Hex(policy)},
			engine.WriteSet{{Table: TableSNPHostData, Key: sha256Hex(policy), Delete: true}}},
		{"add_snp_measurement", map[string]any{"measurement": hex96},
			engine.WriteSet{{Table: TableSNPMeasurements, Key: hex96, Value: []byte(`"AllowedToJoin"`)}}},
		{"remove_snp_measurement", map[string]any{"measurement": hex96},
			engine.WriteSet{{Table: TableSNPMeasurements, Key: hex96, Delete: true}}},
		{"transition_node_to_trusted", map[string]any{"node_id": nodeID, "valid_from": "2026-03-04T00:00:00Z"},
			engine.WriteSet{{Table: TableNodes, Key: nodeID, Value: []byte(`{"role":"participant","status":"Trusted","valid_from":"2026-03-04T00:00:00Z","validity_period_days":365}`)}}},
		{"transition_node_to_trusted", map[string]any{"node_id": nodeID, "valid_from": "220101120000Z", "validity_period_days": 30},
			engine.WriteSet{{Table: TableNodes, Key: nodeID, Value: []byte(`{"role":"participant","status":"Trusted","valid_from":"220101120000Z","validity_period_days":30}`)}}},
		// A Pending node is deleted outright, as in CCF.
		{"remove_node", map[string]any{"node_id": nodeID},
			engine.WriteSet{{Table: TableNodes, Key: nodeID, Delete: true}}},
		{"remove_node", map[string]any{"node_id": hex64}, engine.WriteSet{}}, // unknown node: nothing to do
		{"set_node_join_policy", map[string]any{"policy": "export function apply() { return true }"},
			engine.WriteSet{{Table: TableJoinPolicy, Key: "", Value: jsonOf(t, "export function apply() { return true }")}}},
		{"remove_node_join_policy", nil,
			engine.WriteSet{{Table: TableJoinPolicy, Key: "", Delete: true}}},
		{"set_js_app", map[string]any{"bundle": map[string]any{"modules": []any{map[string]any{"name": "app.js", "module": "export {}"}}}},
			engine.WriteSet{{Table: TableJSApp, Key: "", Value: []byte(`{"metadata":{},"modules":[{"module":"export {}","name":"app.js"}]}`)}}},
		{"set_network_parameters", map[string]any{"parameters": params, "description": "more notaries", "update_deadline": deadline},
			engine.WriteSet{}}, // the engine (netmap) stores and advertises them
		{"cancel_network_parameters_update", map[string]any{}, engine.WriteSet{}},
		{"set_service_configuration", map[string]any{"recovery_threshold": 2},
			engine.WriteSet{{Table: TableServiceConfig, Key: "", Value: []byte(`{"recovery_threshold":2,"max_actions_per_proposal":` +
				itoa(DefaultMaxActionsPerProposal) + `,"max_open_proposals":` + itoa(DefaultMaxOpenProposals) +
				`,"replay_window_seconds":` + itoa(DefaultReplayWindowSeconds) + `}`)}}},
	}
	c := defaultConstitution(t)
	seen := map[string]bool{}
	for _, tc := range tests {
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			st := base()
			p := proposal(t, action(tc.name, tc.args))
			r, err := c.Validate(env(st), p)
			if err != nil || !r.Valid {
				t.Fatalf("validate: %+v %v", r, err)
			}
			ws, err := c.Apply(env(st), p, "p1")
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			if !ws.Equal(tc.want) {
				t.Fatalf("write set\n got %s\nwant %s", showWS(ws), showWS(tc.want))
			}
		})
	}
	for _, a := range defaultActionNames {
		if !seen[a] {
			t.Errorf("action %s has no write-set case", a)
		}
	}
}

var defaultActionNames = []string{"set_member", "remove_member", "set_constitution", "add_snp_host_data",
	"remove_snp_host_data", "add_snp_measurement", "remove_snp_measurement", "transition_node_to_trusted",
	"remove_node", "set_node_join_policy", "remove_node_join_policy", "set_js_app", "set_network_parameters",
	"cancel_network_parameters_update", "set_service_configuration"}

func itoa(n int) string { return strconv.Itoa(n) }

func showWS(ws engine.WriteSet) string {
	var b strings.Builder
	for _, w := range ws {
		if w.Delete {
			b.WriteString("\n  delete " + w.Table + "[" + w.Key + "]")
		} else {
			b.WriteString("\n  " + w.Table + "[" + w.Key + "] = " + string(w.Value))
		}
	}
	return b.String()
}

// Bad arguments are refused by validate with the schema's message.
func TestDefaultActionsInvalidArgs(t *testing.T) {
	tests := []struct {
		name string
		args map[string]any
		want string
	}{
		{"set_member", map[string]any{}, "missing property 'cert'"},
		{"set_member", map[string]any{"cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "not an X.509 certificate"},
		{"set_member", map[string]any{"cert": members(t, 1)[0].cert, "member_data": 3}, "at '/member_data': got number, want object"},
		{"remove_member", map[string]any{"member_id": "x"}, "at '/member_id'"},
		{"set_constitution", map[string]any{"constitution": 1}, "at '/constitution': got number, want string"},
		{"set_constitution", map[string]any{"constitution": "export function validate() {}"}, "ConstitutionCompileError"},
		{"add_snp_host_data", map[string]any{"host_data": "ZZ"}, "at '/host_data'"},
		{"add_snp_host_data", map[string]any{"host_data": hex64, "security_policy": "p"}, "host_data must be the SHA-256 of security_policy"},
		{"remove_snp_host_data", map[string]any{}, "missing property 'host_data'"},
		{"add_snp_measurement", map[string]any{"measurement": hex64}, "at '/measurement'"},
		{"remove_snp_measurement", map[string]any{"measurement": 7}, "at '/measurement'"},
		{"transition_node_to_trusted", map[string]any{"node_id": hex64, "valid_from": "tomorrow"}, "at '/valid_from'"},
		{"remove_node", map[string]any{"node": hex64}, "missing property 'node_id'"},
		{"set_node_join_policy", map[string]any{"policy": ""}, "at '/policy'"},
		{"remove_node_join_policy", map[string]any{"x": 1}, "maxProperties"},
		{"set_js_app", map[string]any{"bundle": map[string]any{"modules": []any{}}}, "at '/bundle/modules'"},
		{"set_js_app", map[string]any{"bundle": map[string]any{"modules": []any{map[string]any{"name": "a", "module": ""}, map[string]any{"name": "a", "module": ""}}}}, "module a appears twice"},
		{"set_network_parameters", map[string]any{"parameters": map[string]any{}, "description": "", "update_deadline": "2030-01-01T00:00:00Z"}, "at '/parameters'"},
		{"set_network_parameters", map[string]any{"parameters": map[string]any{"minimum_platform_version": 1, "notaries": []any{},
			"max_message_size": 1, "max_transaction_size": 1, "epoch": 1}, "description": "", "update_deadline": "2020-01-01T00:00:00Z"}, "is not in the future"},
		{"cancel_network_parameters_update", map[string]any{"hash": "x"}, "additional properties 'hash' not allowed"},
		{"set_service_configuration", map[string]any{"recovery_threshold": 0}, "at '/recovery_threshold'"},
		{"set_service_configuration", map[string]any{"recovery_threshold": 4}, "more than the 3 active member(s)"},
		{"set_service_configuration", map[string]any{"colour": "red"}, "additional properties 'colour' not allowed"},
	}
	c := defaultConstitution(t)
	e := env(stateWithMembers(t, members(t, 3)))
	seen := map[string]bool{}
	for _, tc := range tests {
		seen[tc.name] = true
		t.Run(tc.name+" "+tc.want, func(t *testing.T) {
			r, err := c.Validate(e, proposal(t, action(tc.name, tc.args)))
			if err != nil {
				t.Fatal(err)
			}
			if r.Valid || !strings.HasPrefix(r.Description, tc.name+" at position 0: ") || !strings.Contains(r.Description, tc.want) {
				t.Fatalf("got %+v, want invalid mentioning %q", r, tc.want)
			}
		})
	}
	for _, a := range defaultActionNames {
		if !seen[a] {
			t.Errorf("action %s has no invalid-argument case", a)
		}
	}
}

func TestDefaultValidateProposalShape(t *testing.T) {
	c := defaultConstitution(t)
	e := env(stateWithMembers(t, members(t, 1)))
	many := make([]map[string]any, DefaultMaxActionsPerProposal+1)
	for i := range many {
		many[i] = action("remove_node_join_policy", nil)
	}
	tests := []struct{ proposal, want string }{
		{"not json", "proposal is not JSON"},
		{`[]`, "proposal: at '': got array, want object"},
		{`{"actions":[]}`, "proposal: at '/actions': minItems"},
		{`{"actions":[{"name":"fly_to_moon"}]}`, "fly_to_moon at position 0: no such action"},
		{`{"actions":[{"name":"remove_node_join_policy"},{"name":"remove_member","args":{}}]}`, "remove_member at position 1: at '': missing property 'member_id'"},
		{proposal(t, many...), "max_actions_per_proposal is 32"},
		{"[" + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + "]", "proposal is not JSON"},
	}
	for _, tc := range tests {
		r, err := c.Validate(e, tc.proposal)
		if err != nil || r.Valid || !strings.Contains(r.Description, tc.want) {
			t.Errorf("%.40s: got %+v %v, want invalid mentioning %q", tc.proposal, r, err, tc.want)
		}
	}
	st := stateWithMembers(t, members(t, 1))
	putJSON(t, st, TableServiceConfig, "", map[string]any{"max_actions_per_proposal": 40})
	if r, err := c.Validate(env(st), proposal(t, many...)); err != nil || !r.Valid {
		t.Errorf("with max_actions_per_proposal 40: %+v %v", r, err)
	}
}

func TestDefaultResolve(t *testing.T) {
	ms := members(t, 5)
	a, b, c, d := ms[0].id, ms[1].id, ms[2].id, ms[3].id
	outsider := ms[4].id
	yes := func(id string) Vote { return Vote{id, true} }
	no := func(id string) Vote { return Vote{id, false} }
	tests := []struct {
		name    string
		members int
		votes   []Vote
		want    ProposalState
	}{
		{"no votes", 3, nil, ProposalOpen},
		{"one yes of three", 3, []Vote{yes(a)}, ProposalOpen},
		{"two yes of three", 3, []Vote{yes(a), yes(b)}, ProposalAccepted},
		{"all yes", 3, []Vote{yes(a), yes(b), yes(c)}, ProposalAccepted},
		{"one each", 3, []Vote{yes(a), no(b)}, ProposalOpen},
		{"one no of three", 3, []Vote{no(a)}, ProposalOpen},
		{"two no of three", 3, []Vote{no(a), no(b)}, ProposalRejected},
		{"outsiders do not count", 3, []Vote{yes(a), yes(outsider), yes(d)}, ProposalOpen},
		{"a member counts once", 3, []Vote{yes(a), yes(a)}, ProposalOpen},
		{"two yes of four", 4, []Vote{yes(a), yes(b)}, ProposalOpen},
		{"three yes of four", 4, []Vote{yes(a), yes(b), yes(c)}, ProposalAccepted},
		{"two no of four cannot pass", 4, []Vote{no(a), no(b)}, ProposalRejected},
		{"sole member", 1, []Vote{yes(a)}, ProposalAccepted},
		{"sole member against", 1, []Vote{no(a)}, ProposalRejected},
	}
	cons := defaultConstitution(t)
	p := proposal(t, action("remove_node_join_policy", nil))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cons.Resolve(env(stateWithMembers(t, ms[:tc.members])), p, a, tc.votes, "p1")
			if err != nil || got != tc.want {
				t.Fatalf("got %v %v, want %v", got, err, tc.want)
			}
		})
	}
	// A member that is not Active neither votes nor counts.
	st := stateWithMembers(t, ms[:3])
	putJSON(t, st, TableMembers, d, map[string]any{"cert": ms[3].cert, "status": "Accepted"})
	if got, err := cons.Resolve(env(st), p, a, []Vote{yes(a), yes(d)}, "p1"); err != nil || got != ProposalOpen {
		t.Fatalf("inactive member: %v %v", got, err)
	}
}

// Resolve agrees with a naive count for every combination of up to five
// members' votes.
func TestDefaultResolveMatchesNaiveCount(t *testing.T) {
	ms := members(t, 5)
	cons := defaultConstitution(t)
	for n := 1; n <= 5; n++ {
		e := env(stateWithMembers(t, ms[:n]))
		for mask := 0; mask < 1<<(2*n); mask++ { // per member: 0 absent, 1 yes, 2 no, 3 absent
			var votes []Vote
			yes, no := 0, 0
			for i := range n {
				switch (mask >> (2 * i)) & 3 {
				case 1:
					votes = append(votes, Vote{ms[i].id, true})
					yes++
				case 2:
					votes = append(votes, Vote{ms[i].id, false})
					no++
				}
			}
			want := ProposalOpen
			switch {
			case 2*yes > n:
				want = ProposalAccepted
			case 2*(n-no) <= n:
				want = ProposalRejected
			}
			got, err := cons.Resolve(e, "{}", ms[0].id, votes, "p")
			if err != nil || got != want {
				t.Fatalf("%d members, %d yes, %d no: got %v %v, want %v", n, yes, no, got, err, want)
			}
		}
	}
}

func TestDefaultRefusesToRemoveLastMember(t *testing.T) {
	c := defaultConstitution(t)
	one := members(t, 1)
	p := proposal(t, action("remove_member", map[string]any{"member_id": one[0].id}))
	r, err := c.Validate(env(stateWithMembers(t, one)), p)
	if err != nil || r.Valid || !strings.Contains(r.Description, "would leave 0 active member(s)") {
		t.Fatalf("validate: %+v %v", r, err)
	}
	// Accepted while two members remained, applied once only one does.
	if _, err := c.Apply(env(stateWithMembers(t, one)), p, "p1"); codeOf(err) != CodeScriptThrew || !strings.Contains(err.Error(), "would leave 0") {
		t.Fatalf("apply: %v", err)
	}
	// The recovery threshold must stay reachable.
	three := members(t, 3)
	st := stateWithMembers(t, three)
	putJSON(t, st, TableServiceConfig, "", map[string]any{"recovery_threshold": 3})
	p = proposal(t, action("remove_member", map[string]any{"member_id": three[0].id}))
	if r, err := c.Validate(env(st), p); err != nil || r.Valid {
		t.Fatalf("threshold: %+v %v", r, err)
	}
}

func TestDefaultTransitionRefusesUnknownOrRetiredNodes(t *testing.T) {
	c := defaultConstitution(t)
	st := stateWithMembers(t, members(t, 1))
	putJSON(t, st, TableNodes, hex64, map[string]any{"status": NodeRetired})
	for _, id := range []string{hex64, sha256Hex("nobody")} {
		_, err := c.Apply(env(st), proposal(t, action("transition_node_to_trusted", map[string]any{"node_id": id})), "p1")
		if codeOf(err) != CodeScriptThrew {
			t.Fatalf("%s: got %v", id, err)
		}
	}
}

func TestDefaultApplyIsAtomic(t *testing.T) {
	c := defaultConstitution(t)
	st := stateWithMembers(t, members(t, 1))
	p := proposal(t, action("add_snp_measurement", map[string]any{"measurement": hex96}),
		action("transition_node_to_trusted", map[string]any{"node_id": hex64}))
	ws, err := c.Apply(env(st), p, "p1")
	if err == nil || ws != nil {
		t.Fatalf("got %v %v, want a failure and no writes", ws, err)
	}
}

func TestDefaultSetConstitutionRoundTrip(t *testing.T) {
	c := defaultConstitution(t)
	src := `export function validate() { return { valid: true, description: "v2" }; }
export function resolve() { return "Accepted"; }
export function apply() {}`
	st := stateWithMembers(t, members(t, 1))
	ws, err := c.Apply(env(st), proposal(t, action("set_constitution", map[string]any{"constitution": src})), "p1")
	if err != nil {
		t.Fatal(err)
	}
	if !ChangesCodeIdentity(ws) {
		t.Fatal("set_constitution must drop other open proposals")
	}
	st.Apply(ws)
	var stored string
	if err := json.Unmarshal(st[TableConstitution][""], &stored); err != nil || stored != src {
		t.Fatalf("stored %q %v", stored, err)
	}
	next, err := CompileModule(stored)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := next.Validate(env(st), "{}"); err != nil || r.Description != "v2" {
		t.Fatalf("%+v %v", r, err)
	}
	if ChangesCodeIdentity(engine.WriteSet{{Table: TableMembers, Key: "x"}}) {
		t.Fatal("a member change is not a code identity change")
	}
	if !ChangesCodeIdentity(engine.WriteSet{{Table: TableSNPHostData, Key: "x", Value: []byte(`{}`)}}) {
		t.Fatal("add_snp_host_data must drop other open proposals")
	}
	if ChangesCodeIdentity(engine.WriteSet{{Table: TableSNPHostData, Key: "x", Delete: true}}) {
		t.Fatal("remove_snp_host_data drops no proposal (CCF)")
	}
}

// A ballot may look at the proposal and the state, as in CCF.
func TestConditionalBallot(t *testing.T) {
	ms := members(t, 3)
	b := ballot(t, `export function vote(proposal, proposerId) {
		const p = JSON.parse(proposal);
		const onlyMeasurements = p.actions.every((a) => a.name === "add_snp_measurement");
		const proposer = gavel.kv.get("gov.members", proposerId);
		const known = onlyMeasurements && p.actions.every((a) => !gavel.kv.has("gov.nodes.snp.measurements", a.args.measurement));
		return onlyMeasurements && proposer !== undefined && proposer.status === "Active" && known;
	}`)
	st := stateWithMembers(t, ms)
	putJSON(t, st, TableSNPMeasurements, strings.Repeat("ab", 48), "AllowedToJoin")
	tests := []struct {
		name, proposal, proposer string
		want                     bool
	}{
		{"fits", proposal(t, action("add_snp_measurement", map[string]any{"measurement": hex96})), ms[0].id, true},
		{"other action", proposal(t, action("remove_node_join_policy", nil)), ms[0].id, false},
		{"unknown proposer", proposal(t, action("add_snp_measurement", map[string]any{"measurement": hex96})), hex64, false},
		{"already trusted", proposal(t, action("add_snp_measurement", map[string]any{"measurement": strings.Repeat("ab", 48)})), ms[1].id, false},
	}
	for _, tc := range tests {
		got, err := b.Vote(env(st), tc.proposal, tc.proposer)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %v %v, want %v", tc.name, got, err, tc.want)
		}
	}
}

// A whole proposal's life through the default constitution: validate,
// ballots, resolve after each, apply, and the next proposal sees the state.
func TestDefaultProposalLifecycle(t *testing.T) {
	ms := members(t, 4)
	st := stateWithMembers(t, ms[:3])
	c := defaultConstitution(t)
	p := proposal(t, action("set_member", map[string]any{"cert": ms[3].cert}))
	if r, err := c.Validate(env(st), p); err != nil || !r.Valid {
		t.Fatalf("validate %+v %v", r, err)
	}
	ballots := []string{
		`export function vote() { return true; }`,
		`export function vote(p) { return JSON.parse(p).actions.length === 1; }`,
	}
	var votes []Vote
	state := ProposalOpen
	for i, src := range ballots {
		ok, err := ballot(t, src).Vote(env(st), p, ms[0].id)
		if err != nil {
			t.Fatal(err)
		}
		votes = append(votes, Vote{ms[i].id, ok})
		if state, err = c.Resolve(env(st), p, ms[0].id, votes, "p1"); err != nil {
			t.Fatal(err)
		}
	}
	if state != ProposalAccepted {
		t.Fatalf("state %v", state)
	}
	ws, err := c.Apply(env(st), p, "p1")
	if err != nil {
		t.Fatal(err)
	}
	st.Apply(ws)
	// The newcomer is Accepted: not counted until it acknowledges.
	if got, err := c.Resolve(env(st), "{}", ms[0].id, votes, "p2"); err != nil || got != ProposalAccepted {
		t.Fatalf("after adding an Accepted member: %v %v", got, err)
	}
	putJSON(t, st, TableMembers, ms[3].id, map[string]any{"cert": ms[3].cert, "status": "Active"})
	// Now four active members: two yes votes no longer carry a proposal.
	got, err := c.Resolve(env(st), "{}", ms[0].id, votes, "p2")
	if err != nil || got != ProposalOpen {
		t.Fatalf("after adding a member: %v %v", got, err)
	}
}

func FuzzValidateDefault(f *testing.F) {
	f.Add(`{"actions":[{"name":"set_member","args":{"cert":"x"}}]}`)
	f.Add(`{"actions":[{"name":"remove_node_join_policy"}]}`)
	f.Add(`{"actions":[{"name":"set_constitution","args":{"constitution":"export {}"}}]}`)
	c := defaultConstitution(f)
	e := env(stateWithMembers(f, members(f, 2)))
	f.Fuzz(func(t *testing.T, p string) {
		r, err := c.Validate(e, p)
		if err != nil {
			t.Fatalf("validate(%q) failed: %v", p, err)
		}
		if !r.Valid && r.Description == "" {
			t.Fatalf("invalid without a description: %q", p)
		}
	})
}

package schemas

import (
	"errors"
	"strings"
	"testing"

	"github.com/gavelhq/gavel/engine"
)

func TestAllSchemasCompile(t *testing.T) {
	if _, err := compiled(); err != nil {
		t.Fatal(err)
	}
	want := []string{"actions/add_snp_host_data", "actions/set_member", "ballot", "proposal"}
	for _, w := range want {
		if !Has(w) {
			t.Errorf("schema %q missing", w)
		}
	}
	if Has("nope") {
		t.Error("Has(nope) = true")
	}
}

func TestValidateJSON(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	tests := []struct {
		schema, body string
		wantErr      string // substring of the message; "" = valid
	}{
		{"proposal", `{"actions":[{"name":"set_member","args":{}}]}`, ""},
		{"proposal", `{"actions":[{"name":"remove_node_join_policy"}]}`, ""},
		{"proposal", `{"actions":[]}`, "at '/actions': minItems"},
		{"proposal", `{"actions":[{"name":"Bad Name"}]}`, "at '/actions/0/name'"},
		{"proposal", `{"actions":[{"name":"x","args":[]}]}`, "at '/actions/0/args': got array, want object"},
		{"proposal", `{"actions":[{"name":"x"}],"extra":1}`, "additional properties 'extra' not allowed"},
		{"proposal", `[]`, "got array, want object"},
		{"ballot", `{"ballot":"export function vote() { return true }"}`, ""},
		{"ballot", `{"ballot":""}`, "at '/ballot'"},
		{"ballot", `{}`, "missing property 'ballot'"},
		{"actions/remove_member", `{"member_id":"` + hex64 + `"}`, ""},
		{"actions/remove_member", `{"member_id":"ABC"}`, "at '/member_id'"},
		{"actions/add_snp_measurement", `{"measurement":"` + hex64 + hex64[:32] + `"}`, ""},
		{"actions/add_snp_measurement", `{"measurement":"` + hex64 + `"}`, "at '/measurement'"},
		{"actions/transition_node_to_trusted", `{"node_id":"` + hex64 + `","valid_from":"2026-01-02T03:04:05Z"}`, ""},
		{"actions/transition_node_to_trusted", `{"node_id":"` + hex64 + `","valid_from":"yesterday"}`, "does not match pattern"},
		{"actions/remove_node_join_policy", `{}`, ""},
		{"actions/remove_node_join_policy", `{"x":1}`, "maxProperties"},
		{"actions/set_service_configuration", `{"recovery_threshold":2}`, ""},
		{"actions/set_service_configuration", `{}`, "minProperties"},
		{"actions/set_service_configuration", `{"recovery_threshold":1.5}`, "want integer"},
	}
	for _, tc := range tests {
		t.Run(tc.schema+" "+tc.body, func(t *testing.T) {
			err := ValidateJSON(tc.schema, []byte(tc.body))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var e *engine.Error
			if !errors.As(err, &e) || e.Code != CodeSchemaViolation || e.Kind != engine.KindInvalid {
				t.Fatalf("got %v, want a SchemaViolation", err)
			}
			if !strings.Contains(e.Message, tc.wantErr) {
				t.Fatalf("message %q does not contain %q", e.Message, tc.wantErr)
			}
		})
	}
}

func TestDescribeIsStable(t *testing.T) {
	body := []byte(`{"parameters":{"epoch":0,"notaries":[{}],"x":1},"description":7,"update_deadline":"soon"}`)
	first := ValidateJSON("actions/set_network_parameters", body)
	if first == nil {
		t.Fatal("expected an error")
	}
	for range 20 {
		if again := ValidateJSON("actions/set_network_parameters", body); again.Error() != first.Error() {
			t.Fatalf("messages differ:\n%v\n%v", first, again)
		}
	}
}

func TestUnknownSchemaAndBadJSON(t *testing.T) {
	if err := Validate("missing", nil); engine.AsError(err).Code != "UnknownSchema" {
		t.Fatalf("got %v", err)
	}
	if err := ValidateJSON("proposal", []byte(`{`)); engine.AsError(err).Code != "InvalidJSON" {
		t.Fatalf("got %v", err)
	}
}

func FuzzValidateJSON(f *testing.F) {
	f.Add(uint8(0), []byte(`{"actions":[{"name":"set_member","args":{"cert":"x"}}]}`))
	f.Add(uint8(1), []byte(`{"ballot":"export function vote(){return true}"}`))
	names := Names()
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		name := names[int(which)%len(names)]
		err := ValidateJSON(name, data)
		if err != nil && engine.AsError(err).Kind != engine.KindInvalid {
			t.Fatalf("%s: non-invalid error %v", name, err)
		}
	})
}

// TestAnswerSchemas checks that the answer schemas carry CCF's facts: the
// shapes CCF defines pass, gavel's old snake_case shapes fail.
func TestAnswerSchemas(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		schema, body string
		ok           bool
	}{
		{"answers/Proposal", `{"proposalId":"` + id + `","proposerId":"` + id + `","proposalState":"Open","ballotCount":0,"ballotSubmitters":[]}`, true},
		{"answers/Proposal", `{"proposalId":"` + id + `","proposerId":"` + id + `","proposalState":"Failed","ballotCount":1,"ballotSubmitters":["` + id + `"],"finalVotes":{"` + id + `":true},"failure":{"reason":"x"}}`, true},
		{"answers/Proposal", `{"proposal_id":"` + id + `","proposer_id":"` + id + `","state":"Open","ballot_count":0}`, false},
		{"answers/Proposal", `{"proposalId":"` + id + `","proposerId":"` + id + `","proposalState":"Pending","ballotCount":0,"ballotSubmitters":[]}`, false},
		{"answers/Proposal", `{"proposalId":"` + id + `","proposerId":"` + id + `","proposalState":"Open","ballotCount":0,"ballotSubmitters":[],"failure":null}`, false},
		{"answers/PagedProposal", `{"value":[]}`, true},
		{"answers/PagedProposal", `{"value":[],"nextLink":"http://h/gov/members/proposals?skipToken=x"}`, true},
		{"answers/PagedProposal", `{"proposals":[]}`, false},
		{"answers/Member", `{"memberId":"` + id + `","status":"Accepted","certificate":"-----BEGIN CERTIFICATE-----"}`, true},
		{"answers/Member", `{"memberId":"` + id + `","status":"Retired","certificate":"-----BEGIN CERTIFICATE-----"}`, false},
		{"answers/StateDigest", `{"memberId":"` + id + `","stateDigest":"` + id + `"}`, true},
		{"answers/Transaction", `{"status":"Committed"}`, true},
		{"answers/Transaction", `{"status":"Done"}`, false},
		{"answers/ErrorResponse", `{"error":{"code":"ProposalNotFound","message":"m"}}`, true},
		{"answers/ErrorResponse", `{"error":{"message":"m"}}`, false},
	} {
		err := ValidateJSON(tc.schema, []byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%s %s: %v, want ok=%v", tc.schema, tc.body, err, tc.ok)
		}
	}
}

package gov

import (
	"testing"

	"github.com/gavelhq/gavel/engine/constitution"
)

// TestParsedMembersAreCopies: a member decoded from the cache is the
// decoded record, and changing one copy changes no other.
func TestParsedMembersAreCopies(t *testing.T) {
	st := constitution.MemState{constitution.TableMembers: {
		"a": []byte(`{"cert":"c","status":"Active","member_data":{"k":1}}`),
		"b": []byte(`{"cert":"c","status":"Active","member_data":{"k":1}}`),
	}}
	m1, ok, err := LoadMember(st, "a")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	m1.MemberData[2] = 'X'
	m1.Status = "Retired"
	m2, _, _ := LoadMember(st, "b")
	if m2.MemberID != "b" || m2.Status != "Active" || string(m2.MemberData) != `{"k":1}` {
		t.Fatalf("%+v", m2)
	}
}

package gov

import (
	"encoding/json"
	"fmt"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/govreq"
)

// InitialMember is a member of a new service.
type InitialMember struct {
	CertPEM    []byte
	MemberData json.RawMessage // optional
}

// memberRecord is the shape the default constitution's set_member writes.
type memberRecord struct {
	Cert       string          `json:"cert"`
	Status     string          `json:"status"`
	MemberData json.RawMessage `json:"member_data"`
}

// GenesisWrites are the governance tables of a new service: its members,
// the constitution module, the service configuration and the script
// budget (constitution.DefaultRuntimeOptions). The constitution must
// compile.
func GenesisWrites(members []InitialMember, constitutionModule string, cfg Config) (engine.WriteSet, error) {
	if len(members) == 0 {
		return nil, fmt.Errorf("gov: a service needs at least one member")
	}
	if _, err := constitution.CompileModule(constitutionModule); err != nil {
		return nil, fmt.Errorf("gov: constitution: %w", err)
	}
	var ws engine.WriteSet
	for _, m := range members {
		cert, err := govreq.ParseCertificatePEM(m.CertPEM)
		if err != nil {
			return nil, fmt.Errorf("gov: member certificate: %w", err)
		}
		data := m.MemberData
		if len(data) == 0 {
			data = json.RawMessage("null")
		}
		rec, err := json.Marshal(memberRecord{Cert: string(m.CertPEM), Status: constitution.MemberActive, MemberData: data})
		if err != nil {
			return nil, err
		}
		ws = append(ws, engine.Write{Table: constitution.TableMembers, Key: govreq.MemberID(cert), Value: rec})
	}
	src, _ := json.Marshal(constitutionModule)
	conf, _ := json.Marshal(cfg)
	opts, _ := json.Marshal(constitution.DefaultRuntimeOptions())
	ws = append(ws,
		engine.Write{Table: constitution.TableConstitution, Key: "", Value: src},
		engine.Write{Table: constitution.TableServiceConfig, Key: "", Value: conf},
		engine.Write{Table: constitution.TableJSRuntimeOptions, Key: "", Value: opts},
	)
	ws = append(ws, constitutionDigestWrites(ws)...)
	return ws.Canonical(), nil
}

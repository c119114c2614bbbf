package projections

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/nodes"
)

// Governance is the read side of governance over a state. Its answers are
// CCF's governance API types (api-version 2024-07-01).
type Governance struct{ State engine.StateReader }

// Page bounds a list: the keys after After, at most Limit of them (0: all).
type Page struct {
	After string
	Limit int
}

// Proposals lists proposals in id order, only those in state when it is
// not "" (a gavel extension), one page of them; more says whether others
// follow. Open proposals come from the open index, not a scan.
func (g Governance) Proposals(state string, page Page) (ps []*gov.Proposal, more bool, err error) {
	table := gov.TableProposals
	if state == gov.StateOpen {
		table = gov.TableOpenProposals
	}
	ps = []*gov.Proposal{}
	var loadErr error
	err = g.State.Range(table, func(id string, _ []byte) bool {
		if id <= page.After && page.After != "" {
			return true
		}
		p, ok, err := gov.LoadProposal(g.State, id)
		if err != nil {
			loadErr = err
			return false
		}
		if !ok || (state != "" && p.State != state) {
			return true
		}
		if page.Limit > 0 && len(ps) == page.Limit {
			more = true
			return false
		}
		ps = append(ps, p)
		return true
	})
	if err == nil {
		err = loadErr
	}
	return ps, more, err
}

// Proposal returns one proposal, or CCF's ProposalNotFound.
func (g Governance) Proposal(id string) (*gov.Proposal, error) {
	p, ok, err := gov.LoadProposal(g.State, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, engine.Errorf(engine.KindNotFound, "ProposalNotFound", "Could not find proposal %s.", id)
	}
	return p, nil
}

// Ballot is a member's ballot script on a proposal (CCF's VoteNotFound
// when it has none).
func (g Governance) Ballot(proposalID, memberID string) (string, error) {
	p, err := g.Proposal(proposalID)
	if err != nil {
		return "", err
	}
	b, ok := p.Ballots[memberID]
	if !ok {
		return "", engine.Errorf(engine.KindNotFound, "VoteNotFound", "Member %s has not voted for proposal %s.", memberID, proposalID)
	}
	return b, nil
}

// Member is CCF's ServiceState.Member.
type Member struct {
	MemberID            string          `json:"memberId"`
	Status              string          `json:"status"`
	MemberData          json.RawMessage `json:"memberData,omitempty"`
	Certificate         string          `json:"certificate"`
	PublicEncryptionKey string          `json:"publicEncryptionKey,omitempty"`
	RecoveryRole        string          `json:"recoveryRole,omitempty"`
}

func memberView(m *gov.Member) Member {
	v := Member{MemberID: m.MemberID, Status: m.Status, Certificate: m.Cert,
		PublicEncryptionKey: m.EncryptionPubKey, RecoveryRole: m.RecoveryRole}
	if len(m.MemberData) > 0 && string(m.MemberData) != "null" {
		v.MemberData = m.MemberData
	}
	return v
}

// Members lists the members in id order, one page of them.
func (g Governance) Members(page Page) (ms []Member, more bool, err error) {
	ms = []Member{}
	var loadErr error
	err = g.State.Range(constitution.TableMembers, func(id string, _ []byte) bool {
		if id <= page.After && page.After != "" {
			return true
		}
		if page.Limit > 0 && len(ms) == page.Limit {
			more = true
			return false
		}
		m, ok, err := gov.LoadMember(g.State, id)
		if err != nil {
			loadErr = err
			return false
		}
		if ok {
			ms = append(ms, memberView(m))
		}
		return true
	})
	if err == nil {
		err = loadErr
	}
	return ms, more, err
}

// Member returns one member, or CCF's ResourceNotFound.
func (g Governance) Member(id string) (Member, error) {
	m, ok, err := gov.LoadMember(g.State, id)
	if err != nil {
		return Member{}, err
	}
	if !ok {
		return Member{}, engine.Errorf(engine.KindNotFound, "ResourceNotFound", "Member %s does not exist.", id)
	}
	return memberView(m), nil
}

// StateDigest is the digest a member must acknowledge (CCF's
// ResourceNotFound before it asked for one).
func (g Governance) StateDigest(memberID string) (gov.StateDigest, error) {
	d, ok, err := gov.LoadStateDigest(g.State, memberID)
	if err != nil {
		return d, err
	}
	if !ok {
		return d, engine.Errorf(engine.KindNotFound, "ResourceNotFound", "No ACK record exists for member %s.", memberID)
	}
	return d, nil
}

// ServiceInfo is CCF's ServiceState.ServiceInfo. Certificate, status and
// creation txid come from the caller; Configuration carries CCF's two
// required fields and gavel's governance settings (an extension).
type ServiceInfo struct {
	Status                string        `json:"status"`
	Certificate           string        `json:"certificate"`
	RecoveryCount         int           `json:"recoveryCount"`
	CreationTransactionID string        `json:"creationTransactionId"`
	Configuration         Configuration `json:"configuration"`
}

// Configuration is ServiceInfo's configuration.
type Configuration struct {
	// CCF's fields. gavel issues no node certificates yet and keeps every
	// request's content id (not a window of recent ones); CCF's defaults
	// are reported.
	MaximumNodeCertificateValidityDays int `json:"maximumNodeCertificateValidityDays"`
	RecentCoseProposalsWindowSize      int `json:"recentCoseProposalsWindowSize"`
	// gavel's governance settings (set_service_configuration).
	RecoveryThreshold     int `json:"recoveryThreshold"`
	MaxActionsPerProposal int `json:"maxActionsPerProposal"`
	MaxOpenProposals      int `json:"maxOpenProposals"`
	ReplayWindowSeconds   int `json:"replayWindowSeconds"`
}

// CCF's defaults for the configuration fields gavel does not use.
const (
	ccfMaximumNodeCertificateValidityDays = 365
	ccfRecentCoseProposalsWindowSize      = 100
)

// ServiceInfo reads the service configuration as recorded.
func (g Governance) ServiceInfo() (ServiceInfo, error) {
	cfg := gov.DefaultConfig()
	b, ok, err := g.State.Get(constitution.TableServiceConfig, "")
	if err != nil {
		return ServiceInfo{}, err
	}
	if ok {
		if err := json.Unmarshal(b, &cfg); err != nil {
			return ServiceInfo{}, fmt.Errorf("projections: service configuration: %w", err)
		}
	}
	return ServiceInfo{Status: "Open", Configuration: Configuration{
		MaximumNodeCertificateValidityDays: ccfMaximumNodeCertificateValidityDays,
		RecentCoseProposalsWindowSize:      ccfRecentCoseProposalsWindowSize,
		RecoveryThreshold:                  cfg.RecoveryThreshold,
		MaxActionsPerProposal:              cfg.MaxActionsPerProposal,
		MaxOpenProposals:                   cfg.MaxOpenProposals,
		ReplayWindowSeconds:                cfg.ReplayWindowSeconds,
	}}, nil
}

// JSApp is CCF's ServiceState.JsApp: the endpoints of the application
// bundle set by set_js_app (CCF's metadata.endpoints, in the answer's
// camelCase), empty while none is set.
type JSApp struct {
	Endpoints map[string]map[string]JSEndpoint `json:"endpoints"`
}

// JSEndpoint is CCF's ServiceState.JsEndpointInfo.
type JSEndpoint struct {
	JSModule           string         `json:"jsModule"`
	JSFunction         string         `json:"jsFunction"`
	ForwardingRequired string         `json:"forwardingRequired"`
	AuthnPolicies      []string       `json:"authnPolicies"`
	Mode               string         `json:"mode"`
	OpenAPI            map[string]any `json:"openApi"`
}

// JSApp reads the application bundle's endpoints.
func (g Governance) JSApp() (JSApp, error) {
	app := JSApp{Endpoints: map[string]map[string]JSEndpoint{}}
	b, ok, err := g.State.Get(constitution.TableJSApp, "")
	if err != nil || !ok {
		return app, err
	}
	var bundle struct {
		Metadata struct {
			Endpoints map[string]map[string]struct {
				JSModule           string         `json:"js_module"`
				JSFunction         string         `json:"js_function"`
				ForwardingRequired string         `json:"forwarding_required"`
				AuthnPolicies      []string       `json:"authn_policies"`
				Mode               string         `json:"mode"`
				OpenAPI            map[string]any `json:"openapi"`
			} `json:"endpoints"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(b, &bundle); err != nil {
		return app, fmt.Errorf("projections: js app: %w", err)
	}
	for path, ops := range bundle.Metadata.Endpoints {
		app.Endpoints[path] = map[string]JSEndpoint{}
		for verb, e := range ops {
			ep := JSEndpoint{JSModule: e.JSModule, JSFunction: e.JSFunction, ForwardingRequired: ccfEnum(e.ForwardingRequired, "Sometimes"),
				AuthnPolicies: e.AuthnPolicies, Mode: ccfEnum(e.Mode, "ReadWrite"), OpenAPI: e.OpenAPI}
			if ep.AuthnPolicies == nil {
				ep.AuthnPolicies = []string{}
			}
			if ep.OpenAPI == nil {
				ep.OpenAPI = map[string]any{}
			}
			app.Endpoints[path][verb] = ep
		}
	}
	return app, nil
}

// ccfEnum turns CCF's snake_case metadata values (read_write) into the
// answer's enum values (ReadWrite).
func ccfEnum(v, dflt string) string {
	switch v {
	case "":
		return dflt
	case "sometimes":
		return "Sometimes"
	case "always":
		return "Always"
	case "never":
		return "Never"
	case "readwrite", "read_write":
		return "ReadWrite"
	case "readonly", "read_only":
		return "ReadOnly"
	case "historical":
		return "Historical"
	}
	return v
}

// JoinPolicies is CCF's ServiceState.JoinPolicies: what joining nodes must
// present. SNP host data and measurements come from the governance
// tables; nodes join with the issue that adds them.
type JoinPolicies struct {
	SGX     SGXJoinPolicy     `json:"sgx"`
	SNP     SNPJoinPolicy     `json:"snp"`
	Virtual VirtualJoinPolicy `json:"virtual"`
}

// SGXJoinPolicy is CCF's ServiceState.JoinPolicy (gavel runs no SGX).
type SGXJoinPolicy struct {
	Measurements []string `json:"measurements"`
}

// SNPJoinPolicy is CCF's ServiceState.SnpJoinPolicy.
type SNPJoinPolicy struct {
	Measurements    []string          `json:"measurements"`
	HostData        map[string]string `json:"hostData"`
	UVMEndorsements map[string]any    `json:"uvmEndorsements"`
	TCBVersions     map[string]any    `json:"tcbVersions"`
}

// VirtualJoinPolicy is CCF's ServiceState.VirtualJoinPolicy.
type VirtualJoinPolicy struct {
	Measurements []string `json:"measurements"`
	HostData     []string `json:"hostData"`
}

// JoinPolicies reads the trusted SNP host data and measurements.
func (g Governance) JoinPolicies() (JoinPolicies, error) {
	jp := JoinPolicies{
		SGX:     SGXJoinPolicy{Measurements: []string{}},
		SNP:     SNPJoinPolicy{Measurements: []string{}, HostData: map[string]string{}, UVMEndorsements: map[string]any{}, TCBVersions: map[string]any{}},
		Virtual: VirtualJoinPolicy{Measurements: []string{}, HostData: []string{}},
	}
	var bad error
	err := g.State.Range(constitution.TableSNPHostData, func(hostData string, v []byte) bool {
		var rec struct {
			SecurityPolicy string `json:"security_policy"`
		}
		if err := json.Unmarshal(v, &rec); err != nil {
			bad = fmt.Errorf("projections: host data %s: %w", hostData, err)
			return false
		}
		jp.SNP.HostData[hostData] = rec.SecurityPolicy
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return jp, err
	}
	err = g.State.Range(constitution.TableSNPMeasurements, func(m string, _ []byte) bool {
		jp.SNP.Measurements = append(jp.SNP.Measurements, m)
		return true
	})
	sort.Strings(jp.SNP.Measurements)
	if err != nil {
		return jp, err
	}
	return jp, g.nodeJoinPolicies(&jp)
}

// nodeJoinPolicies adds the node tables CCF also reports: minimum TCB
// versions, virtual host data and measurements (projections/nodes.go).
func (g Governance) nodeJoinPolicies(jp *JoinPolicies) error {
	err := g.State.Range(nodes.TableSNPTCBVersions, func(cpuid string, v []byte) bool {
		jp.SNP.TCBVersions[cpuid] = json.RawMessage(v)
		return true
	})
	if err != nil {
		return err
	}
	for table, list := range map[string]*[]string{nodes.TableVirtualHostData: &jp.Virtual.HostData, nodes.TableVirtualMeasurements: &jp.Virtual.Measurements} {
		if err := g.State.Range(table, func(k string, _ []byte) bool { *list = append(*list, k); return true }); err != nil {
			return err
		}
		sort.Strings(*list)
	}
	return nil
}

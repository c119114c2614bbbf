package nodes

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/attest"
	"github.com/gavelhq/gavel/engine/constitution"
	"github.com/gavelhq/gavel/engine/joinproof"
	"github.com/gavelhq/gavel/engine/receipt"
)

// Governed tables a join reads beyond the constitution's (CCF's names).
const (
	TableSNPHostData         = constitution.TableSNPHostData
	TableSNPMeasurements     = constitution.TableSNPMeasurements
	TableSNPTCBVersions      = "gov.nodes.snp.tcb_versions"     // CPUID hex → attest.TCB (JSON)
	TableVirtualHostData     = "gov.nodes.virtual.host_data"    // host data hex → {"metadata": …}
	TableVirtualMeasurements = "gov.nodes.virtual.measurements" // measurement hex → "AllowedToJoin"
	TableJoinPolicy          = constitution.TableJoinPolicy
)

// Why a join is refused after its request verified.
var (
	ErrHostDataUntrusted = errors.New("host data is not trusted and the node presents no transparent statement")
	ErrNoJoinPolicy      = errors.New("host data is not trusted and no join policy is set")
	ErrPolicyRejected    = errors.New("the join policy rejected the transparent statement")
	ErrPolicyFailed      = errors.New("the join policy failed")
)

// Settings are what the service's genesis fixes about attestation: the
// stateless half of attest.Policy and the keys its receipts are signed
// with.
type Settings struct {
	Virtual     bool
	AllowDebug  bool
	Roots       []*x509.Certificate
	ServiceKeys receipt.KeySet
}

// Join is a verified join request: its signature checked, its evidence and
// transparent statement verified at the request's time. Their failures
// are kept, not returned: a join from a known key is a poll, answered
// whatever its evidence says (as CCF does).
type Join struct {
	Signed       *SignedJoin
	Evidence     *attest.Verified
	EvidenceErr  error
	Statement    *joinproof.Validated
	StatementErr error
	Limits       constitution.Limits
}

// VerifyJoin is the stateless half of a join. The service runs it before
// sequencing at the time of the request; the auditor runs it again at the
// entry's time.
func VerifyJoin(raw []byte, s Settings, at time.Time, limits constitution.Limits) (*Join, error) {
	signed, err := ParseJoin(raw)
	if err != nil {
		return nil, err
	}
	j := &Join{Signed: signed, Limits: limits}
	ev, err := attest.ParseEvidence(signed.Request.Attestation)
	if err == nil {
		j.Evidence, err = attest.VerifyEvidence(ev, attest.Policy{Virtual: s.Virtual, AllowDebug: s.AllowDebug, Roots: s.Roots}, at)
	}
	if err != nil {
		j.EvidenceErr = err
		return j, nil
	}
	if ts := signed.Request.TransparentStatement; len(ts) > 0 {
		j.Statement, j.StatementErr = joinproof.Validate(ts, j.Evidence.HostData[:], s.ServiceKeys, at)
	}
	return j, nil
}

func (j *Join) Kind() engine.EntryKind { return engine.KindNodeJoin }
func (j *Join) Input() []byte          { return j.Signed.Raw }

// JoinResult is the answer to a join, CCF's field names; the service adds
// the endorsed certificate to a Trusted node's.
type JoinResult struct {
	NodeID          string `json:"node_id"`
	NodeStatus      string `json:"node_status"`
	NodeCertificate string `json:"node_certificate,omitempty"`
}

// Execute decides the join against state, in CCF's order: a known key is
// a poll; an address a live node holds is refused; then the evidence, the
// governed measurement, TCB and key binding, then the host data: trusted,
// or judged by the join policy on the transparent statement.
func (j *Join) Execute(st engine.StateReader, f engine.Facts) (engine.Effect, error) {
	id := j.Signed.NodeID
	if rec, ok, err := ReadRecord(st, id); err != nil {
		return engine.Effect{}, err
	} else if ok {
		return poll(rec)
	}
	all, err := ReadAll(st)
	if err != nil {
		return engine.Effect{}, err
	}
	for _, other := range all {
		if other.Address != "" && other.Address == j.Signed.Request.Address && other.Status != StatusRetired {
			return engine.Effect{}, engine.Errorf(engine.KindInvalid, CodeNodeAlreadyExists,
				"node %s already has the address %s", other.NodeID, other.Address)
		}
	}
	if j.EvidenceErr != nil {
		return engine.Effect{}, j.EvidenceErr
	}
	p, err := governedPolicy(st)
	if err != nil {
		return engine.Effect{}, err
	}
	if err := j.Evidence.Check(p, j.Signed.KeyDER); err != nil {
		return engine.Effect{}, err
	}
	hostData := hex.EncodeToString(j.Evidence.HostData[:])
	table := TableSNPHostData
	if j.Evidence.Format == attest.FormatVirtual {
		table = TableVirtualHostData
	}
	joinedBy := JoinedByHostData
	if _, trusted, err := st.Get(table, hostData); err != nil {
		return engine.Effect{}, err
	} else if !trusted {
		if err := j.judge(st, f, hostData); err != nil {
			return engine.Effect{}, err
		}
		joinedBy = JoinedByPolicy
	}
	req := j.Signed.Request
	rec := Record{NodeID: id, Status: StatusPending, Role: req.Role, PublicKey: req.PublicKey, Address: req.Address,
		CodeVersion: req.CodeVersion, AttestationFormat: string(j.Evidence.Format), HostData: hostData,
		Measurement: j.Evidence.MeasurementHex(), JoinedBy: joinedBy, NodeData: req.NodeData}
	result, _ := json.Marshal(JoinResult{NodeID: id, NodeStatus: StatusPending})
	return engine.Effect{Writes: engine.WriteSet{rec.write()}, Result: result}, nil
}

// judge runs the join policy on the transparent statement of untrusted
// host data.
func (j *Join) judge(st engine.StateReader, f engine.Facts, hostData string) error {
	if len(j.Signed.Request.TransparentStatement) == 0 {
		return refuse(ErrHostDataUntrusted, "host data %s", hostData)
	}
	if j.StatementErr != nil {
		return j.StatementErr
	}
	v, ok, err := st.Get(TableJoinPolicy, "")
	if err != nil {
		return err
	}
	var src string
	if !ok || json.Unmarshal(v, &src) != nil || src == "" {
		return refuse(ErrNoJoinPolicy, "host data %s", hostData)
	}
	policy, err := constitution.CompileJoinPolicy(src)
	if err != nil {
		return refuseWith(ErrPolicyFailed, err, "join policy in force does not compile")
	}
	input, err := json.Marshal(joinproof.PolicyInput(j.Statement))
	if err != nil {
		return err
	}
	// The budget is the ledger's (set_js_runtime_options), as for every
	// governance script; j.Limits are only the process's safety nets.
	opts, err := constitution.LoadRuntimeOptions(st)
	if err != nil {
		return err
	}
	reason, accepted, err := policy.Judge(constitution.Env{Time: f.Time, State: st, Limits: opts.Apply(j.Limits)}, string(input))
	if err != nil {
		return refuseWith(ErrPolicyFailed, err, "join policy failed")
	}
	if !accepted {
		e := refuse(ErrPolicyRejected, "%s", reason)
		e.Details = []engine.ErrorDetail{{Code: "JoinPolicyRejected", Message: reason}}
		return e
	}
	return nil
}

func poll(rec Record) (engine.Effect, error) {
	switch rec.Status {
	case StatusPending, StatusTrusted:
		result, _ := json.Marshal(JoinResult{NodeID: rec.NodeID, NodeStatus: rec.Status})
		return engine.Effect{Replayed: true, Result: result}, nil
	}
	return engine.Effect{}, engine.Errorf(engine.KindInvalid, CodeInvalidNodeState, "node %s is %s: it cannot join again", rec.NodeID, rec.Status)
}

// governedPolicy is the stateful half of attest.Policy: trusted
// measurements and minimum TCBs.
func governedPolicy(st engine.StateReader) (attest.Policy, error) {
	p := attest.Policy{SNPMeasurements: map[string]bool{}, VirtualMeasurements: map[string]bool{}, MinimumTCB: map[string]attest.TCB{}}
	for table, set := range map[string]map[string]bool{TableSNPMeasurements: p.SNPMeasurements, TableVirtualMeasurements: p.VirtualMeasurements} {
		if err := st.Range(table, func(k string, _ []byte) bool { set[k] = true; return true }); err != nil {
			return p, err
		}
	}
	var bad error
	err := st.Range(TableSNPTCBVersions, func(cpuid string, v []byte) bool {
		var t attest.TCB
		if err := json.Unmarshal(v, &t); err != nil {
			bad = engine.Wrap(engine.KindInternal, "CorruptTCBVersion", err, "minimum TCB of %s", cpuid)
			return false
		}
		p.MinimumTCB[cpuid] = t
		return true
	})
	if err == nil {
		err = bad
	}
	return p, err
}

func refuse(reason error, format string, args ...any) *engine.Error {
	e := engine.Errorf(engine.KindUnauthorized, CodeInvalidQuote, format, args...)
	e.Err = reason
	e.Details = []engine.ErrorDetail{{Code: CodeInvalidQuote, Message: e.Message}}
	return e
}

// refuseWith refuses with the policy's own error (its code and message) in
// the message and the details.
func refuseWith(reason, cause error, what string) *engine.Error {
	c := engine.AsError(cause)
	e := engine.Errorf(engine.KindUnauthorized, CodeInvalidQuote, "%s: %s", what, c.Message)
	e.Err = reason
	e.Details = []engine.ErrorDetail{{Code: c.Code, Message: c.Message}}
	return e
}

// SettingsFrom builds the join settings of a service whose genesis
// recorded virtual mode and a development SEV-SNP root (PEM, or ""), and
// whose identity certificate is serviceCertPEM.
func SettingsFrom(virtual bool, devRootPEM string, serviceCertPEM []byte) (Settings, error) {
	s := Settings{Virtual: virtual}
	parse := func(what string, b []byte) (*x509.Certificate, error) {
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return nil, engine.Errorf(engine.KindInternal, "CorruptSettings", "%s is not a PEM certificate", what)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, engine.Wrap(engine.KindInternal, "CorruptSettings", err, "%s", what)
		}
		return c, nil
	}
	if devRootPEM != "" {
		root, err := parse("dev_snp_root", []byte(devRootPEM))
		if err != nil {
			return s, err
		}
		s.Roots = []*x509.Certificate{root}
	}
	cert, err := parse("the service certificate", serviceCertPEM)
	if err != nil {
		return s, err
	}
	s.ServiceKeys, err = receipt.NewKeySet(cert.PublicKey)
	return s, err
}

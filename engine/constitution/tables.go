package constitution

import "github.com/gavelhq/gavel/engine"

// Governance tables written by the default constitution. Keys and values are
// described in scripts/constitution/README.md; values are JSON. A singleton
// table uses the key "".
const (
	TableMembers           = "gov.members"                    // member id → {cert, status, member_data}
	TableConstitution      = "gov.constitution"               // "" → constitution module source (JSON string)
	TableSNPHostData       = "gov.nodes.snp.host_data"        // host data hex → {security_policy}
	TableSNPMeasurements   = "gov.nodes.snp.measurements"     // measurement hex → "AllowedToJoin"
	TableNodes             = engine.TableNodes                // node id → {node_id, status, role, public_key, cert}
	TableJoinPolicy        = "gov.nodes.join_policy"          // "" → policy source (JSON string)
	TableJSApp             = "gov.js_app"                     // "" → {metadata, modules}
	TableNetworkParameters = "gov.network_parameters.pending" // "" → {parameters, description, update_deadline, hash}
	TableServiceConfig     = "gov.service.config"             // "" → {recovery_threshold, max_actions_per_proposal, …}
	TableJSRuntimeOptions  = "gov.js_runtime_options"         // "" → RuntimeOptions: the deterministic script budget
)

// Service configuration defaults, used while TableServiceConfig does not
// name a setting (scripts/constitution/tables.js has the same values).
const (
	DefaultRecoveryThreshold     = 1
	DefaultMaxActionsPerProposal = 32
	DefaultMaxOpenProposals      = 1000
	DefaultReplayWindowSeconds   = 300
)

// WritablePrefix is the prefix of every table gavel.kv.set may write.
const WritablePrefix = "gov."

// ReadablePrefix is the prefix of every table gavel.kv may read.
const ReadablePrefix = "gov."

// Member and node states stored by the default constitution.
const (
	MemberActive = "Active"
	NodePending  = "Pending"
	NodeTrusted  = "Trusted"
	NodeRetired  = "Retired"
)

// ChangesCodeIdentity reports whether an accepted proposal's write set
// changes what code may govern or join (the constitution, trusted host data
// or measurements). CCF drops every other open proposal then (Dropped); the
// sequencer does that when this is true.
func ChangesCodeIdentity(ws engine.WriteSet) bool {
	for _, w := range ws {
		switch w.Table {
		case TableConstitution, TableSNPMeasurements:
			return true
		case TableSNPHostData:
			// Trusting host data drops the others; distrusting it
			// (remove_snp_host_data) drops none, as in CCF.
			if !w.Delete {
				return true
			}
		}
	}
	return false
}

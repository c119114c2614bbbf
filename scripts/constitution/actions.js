// The actions of the default constitution: name → { validate(args),
// apply(args, proposalId) }. validate.js checks each action's arguments
// against schemas/actions/<name>.json first; validate here checks what a
// schema cannot (certificates, hashes, state). apply re-checks state, since
// it may change between proposal and acceptance, and throws to fail the
// proposal.
//
// gavel instantiates the module afresh for every call: nothing here
// survives from one call to the next.
import {
  MEMBERS, CONSTITUTION, SNP_HOST_DATA, SNP_MEASUREMENTS, NODES, JOIN_POLICY, JS_APP,
  SERVICE_CONFIG, JS_RUNTIME_OPTIONS, SINGLETON, serviceConfig, activeMemberIds,
} from "./tables.js";

// Node tables of CCF's the shared table list does not name yet.
const VIRTUAL_HOST_DATA = "gov.nodes.virtual.host_data";
const VIRTUAL_MEASUREMENTS = "gov.nodes.virtual.measurements";
const SNP_TCB_VERSIONS = "gov.nodes.snp.tcb_versions";

// A node certificate's validity when transition_node_to_trusted names none
// (CCF's default).
const DEFAULT_NODE_VALIDITY_DAYS = 365;

// valid_from in the forms CCF's tools send: an X.509 UTCTime or
// GeneralizedTime ("220101120000Z"), or ISO 8601.
function checkValidFrom(v) {
  if (v === undefined) return;
  if (/^([0-9]{2}|[0-9]{4})[0-9]{10}Z$/.test(v)) return;
  if (/^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$/.test(v) && !Number.isNaN(Date.parse(v))) return;
  throw new Error(`valid_from ${v} is neither an X.509 time (220101120000Z) nor ISO 8601`);
}

function trustedServiceNodes() {
  const entries = gavel.kv.entries(NODES);
  let n = 0;
  for (let i = 0; i < entries.length; i++) {
    if (entries[i][1].role === "service" && entries[i][1].status === "Trusted") n++;
  }
  return n;
}

// Only the action asked for is built: gavel instantiates the module for
// every call, and a call needs one or a few of the actions.
export function findAction(name) {
  return action(name);
}

function checkRemovable(memberId) {
  const member = gavel.kv.get(MEMBERS, memberId);
  if (member === undefined || member.status !== "Active") return;
  const remaining = activeMemberIds().length - 1;
  const needed = Math.max(1, serviceConfig().recovery_threshold);
  if (remaining < needed) {
    throw new Error(`removing member ${memberId} would leave ${remaining} active member(s); at least ${needed} must remain`);
  }
}

function checkRecoveryThreshold(threshold) {
  if (threshold === undefined) return;
  const active = activeMemberIds().length;
  if (threshold > active) {
    throw new Error(`recovery_threshold ${threshold} is more than the ${active} active member(s)`);
  }
}

function checkDeadline(deadline) {
  const at = Date.parse(deadline);
  if (!(at > Date.now())) {
    throw new Error(`update_deadline ${deadline} is not in the future`);
  }
}

function none() {}

function action(name) { switch (name) {
  // CCF's arguments. A new member is Accepted until it acknowledges the
  // state digest; an existing one keeps its status.
  case "set_member": return {
    validate(args) {
      gavel.pem.certDigestHex(args.cert);
      if (args.encryption_pub_key !== undefined && typeof args.encryption_pub_key !== "string") {
        throw new Error("encryption_pub_key must be a PEM string");
      }
      if (args.recovery_role !== undefined && !["NonParticipant", "Participant", "Owner"].includes(args.recovery_role)) {
        throw new Error("recovery_role must be NonParticipant, Participant or Owner");
      }
    },
    apply(args) {
      const id = gavel.pem.certDigestHex(args.cert);
      const previous = gavel.kv.get(MEMBERS, id);
      const record = {
        cert: args.cert,
        status: previous === undefined ? "Accepted" : previous.status,
        member_data: args.member_data ?? null,
      };
      if (args.encryption_pub_key !== undefined) record.encryption_pub_key = args.encryption_pub_key;
      if (args.recovery_role !== undefined) record.recovery_role = args.recovery_role;
      gavel.kv.set(MEMBERS, id, record);
    },
  };
  case "remove_member": return {
    validate(args) {
      checkRemovable(args.member_id);
    },
    apply(args) {
      checkRemovable(args.member_id);
      gavel.kv.delete(MEMBERS, args.member_id); // an unknown member is a no-op, as in CCF
    },
  };
  case "set_constitution": return {
    validate(args) {
      const problem = gavel.constitution.check(args.constitution);
      if (problem !== null) throw new Error(problem);
    },
    // Other open proposals are dropped by the engine (ChangesCodeIdentity).
    apply(args) {
      gavel.kv.set(CONSTITUTION, SINGLETON, args.constitution);
    },
  };
  case "add_snp_host_data": return {
    validate(args) {
      const policy = args.security_policy ?? "";
      if (policy !== "" && gavel.hash.sha256Hex(policy) !== args.host_data) {
        throw new Error("host_data must be the SHA-256 of security_policy");
      }
    },
    apply(args) {
      gavel.kv.set(SNP_HOST_DATA, args.host_data, { security_policy: args.security_policy ?? "" });
    },
  };
  case "remove_snp_host_data": return {
    validate: none,
    apply(args) {
      gavel.kv.delete(SNP_HOST_DATA, args.host_data);
    },
  };
  case "add_virtual_host_data": return {
    validate: none,
    apply(args) {
      gavel.kv.set(VIRTUAL_HOST_DATA, args.host_data, { metadata: args.metadata ?? "" });
    },
  };
  case "remove_virtual_host_data": return {
    validate: none,
    apply(args) {
      gavel.kv.delete(VIRTUAL_HOST_DATA, args.host_data);
    },
  };
  case "add_virtual_measurement": return {
    validate: none,
    apply(args) {
      gavel.kv.set(VIRTUAL_MEASUREMENTS, args.measurement, "AllowedToJoin");
    },
  };
  case "remove_virtual_measurement": return {
    validate: none,
    apply(args) {
      gavel.kv.delete(VIRTUAL_MEASUREMENTS, args.measurement);
    },
  };
  case "set_snp_minimum_tcb_version": return {
    validate: none,
    apply(args) {
      gavel.kv.set(SNP_TCB_VERSIONS, args.cpuid, args.tcb_version);
    },
  };
  case "add_snp_measurement": return {
    validate: none,
    apply(args) {
      gavel.kv.set(SNP_MEASUREMENTS, args.measurement, "AllowedToJoin");
    },
  };
  case "remove_snp_measurement": return {
    validate: none,
    apply(args) {
      gavel.kv.delete(SNP_MEASUREMENTS, args.measurement);
    },
  };
  case "transition_node_to_trusted": return {
    validate(args) {
      checkValidFrom(args.valid_from);
    },
    apply(args) {
      const node = gavel.kv.get(NODES, args.node_id);
      if (node === undefined) throw new Error(`no node ${args.node_id}`);
      if (node.status === "Retired") throw new Error(`node ${args.node_id} is retired`);
      if (node.status === "Trusted") return;
      node.status = "Trusted";
      // The endorsed certificate's validity: from the proposal's
      // acceptance (the entry's time) unless valid_from says otherwise.
      node.valid_from = args.valid_from ?? new Date().toISOString();
      node.validity_period_days = args.validity_period_days ?? DEFAULT_NODE_VALIDITY_DAYS;
      gavel.kv.set(NODES, args.node_id, node);
    },
  };
  case "remove_node": return {
    validate: none,
    apply(args) {
      const node = gavel.kv.get(NODES, args.node_id);
      if (node === undefined || node.status === "Retired") return; // idempotent, as in CCF
      if (node.status === "Pending") {
        gavel.kv.delete(NODES, args.node_id); // never trusted: nothing to retire (CCF)
        return;
      }
      if (node.role === "service" && node.status === "Trusted" && trustedServiceNodes() === 1) {
        // Its entries would authenticate nothing after: the ledger would stop.
        throw new Error(`node ${args.node_id} is the last trusted service node`);
      }
      node.status = "Retired";
      node.retired_committed = false;
      gavel.kv.set(NODES, args.node_id, node);
    },
  };
  case "set_node_join_policy": return {
    // Compiled when proposed (CCF only checks it is a string).
    validate(args) {
      const problem = gavel.constitution.checkJoinPolicy(args.policy);
      if (problem !== null) throw new Error(problem);
    },
    apply(args) {
      gavel.kv.set(JOIN_POLICY, SINGLETON, args.policy);
    },
  };
  case "remove_node_join_policy": return {
    validate: none,
    apply() {
      gavel.kv.delete(JOIN_POLICY, SINGLETON);
    },
  };
  case "set_js_app": return {
    validate(args) {
      const names = new Set();
      for (const m of args.bundle.modules) {
        if (names.has(m.name)) throw new Error(`module ${m.name} appears twice`);
        names.add(m.name);
      }
    },
    apply(args) {
      gavel.kv.set(JS_APP, SINGLETON, { metadata: args.bundle.metadata ?? {}, modules: args.bundle.modules });
    },
  };
  // The network map's actions: the engine stores and advertises the
  // parameters itself (canonical form, hash, epoch), so apply writes nothing.
  case "set_network_parameters": return {
    validate(args) {
      checkDeadline(args.update_deadline);
    },
    apply: none,
  };
  case "cancel_network_parameters_update": return {
    validate: none,
    apply: none,
  };
  case "set_service_configuration": return {
    validate(args) {
      checkRecoveryThreshold(args.recovery_threshold);
    },
    apply(args) {
      checkRecoveryThreshold(args.recovery_threshold);
      gavel.kv.set(SERVICE_CONFIG, SINGLETON, { ...serviceConfig(), ...args });
    },
  };
  // The deterministic script budget (CCF's action name; the schema holds
  // the ranges, the engine checks them again when the budget is written).
  case "set_js_runtime_options": return {
    validate() {},
    apply(args) {
      gavel.kv.set(JS_RUNTIME_OPTIONS, SINGLETON, { ...gavel.kv.get(JS_RUNTIME_OPTIONS, SINGLETON), ...args });
    },
  };
  default: return undefined;
} }

// The actions of the default constitution: name → { validate(args),
// apply(args, proposalId) }. validate.js checks each action's arguments
// against schemas/actions/<name>.json first; validate here checks what a
// schema cannot (certificates, hashes, state). apply re-checks state, since
// it may change between proposal and acceptance, and throws to fail the
// proposal.
//
// Like every top-level value, this table is frozen once the module has
// loaded, and the module runs no code while loading, so gavel can keep one
// instance per runtime instead of reloading it for every call.
import {
  MEMBERS, CONSTITUTION, SNP_HOST_DATA, SNP_MEASUREMENTS, NODES, JOIN_POLICY, JS_APP,
  SERVICE_CONFIG, SINGLETON, serviceConfig, activeMemberIds,
} from "./tables.js";

export function findAction(name) {
  return Object.hasOwn(actions, name) ? actions[name] : undefined;
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

const actions = {
  // CCF's arguments. A new member is Accepted until it acknowledges the
  // state digest; an existing one keeps its status.
  set_member: {
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
  },
  remove_member: {
    validate(args) {
      checkRemovable(args.member_id);
    },
    apply(args) {
      checkRemovable(args.member_id);
      gavel.kv.delete(MEMBERS, args.member_id); // an unknown member is a no-op, as in CCF
    },
  },
  set_constitution: {
    validate(args) {
      const problem = gavel.constitution.check(args.constitution);
      if (problem !== null) throw new Error(problem);
    },
    // Other open proposals are dropped by the engine (ChangesCodeIdentity).
    apply(args) {
      gavel.kv.set(CONSTITUTION, SINGLETON, args.constitution);
    },
  },
  add_snp_host_data: {
    validate(args) {
      const policy = args.security_policy ?? "";
      if (policy !== "" && gavel.hash.sha256Hex(policy) !== args.host_data) {
        throw new Error("host_data must be the SHA-256 of security_policy");
      }
    },
    apply(args) {
      gavel.kv.set(SNP_HOST_DATA, args.host_data, { security_policy: args.security_policy ?? "" });
    },
  },
  remove_snp_host_data: {
    validate: none,
    apply(args) {
      gavel.kv.delete(SNP_HOST_DATA, args.host_data);
    },
  },
  add_snp_measurement: {
    validate: none,
    apply(args) {
      gavel.kv.set(SNP_MEASUREMENTS, args.measurement, "AllowedToJoin");
    },
  },
  remove_snp_measurement: {
    validate: none,
    apply(args) {
      gavel.kv.delete(SNP_MEASUREMENTS, args.measurement);
    },
  },
  transition_node_to_trusted: {
    validate: none,
    apply(args) {
      const node = gavel.kv.get(NODES, args.node_id);
      if (node === undefined) throw new Error(`no node ${args.node_id}`);
      if (node.status === "Retired") throw new Error(`node ${args.node_id} is retired`);
      if (node.status === "Trusted") return;
      node.status = "Trusted";
      if (args.valid_from !== undefined) node.valid_from = args.valid_from;
      gavel.kv.set(NODES, args.node_id, node);
    },
  },
  remove_node: {
    validate: none,
    apply(args) {
      const node = gavel.kv.get(NODES, args.node_id);
      if (node === undefined || node.status === "Retired") return; // idempotent, as in CCF
      node.status = "Retired";
      node.retired_committed = false;
      gavel.kv.set(NODES, args.node_id, node);
    },
  },
  set_node_join_policy: {
    validate: none,
    apply(args) {
      gavel.kv.set(JOIN_POLICY, SINGLETON, args.policy);
    },
  },
  remove_node_join_policy: {
    validate: none,
    apply() {
      gavel.kv.delete(JOIN_POLICY, SINGLETON);
    },
  },
  set_js_app: {
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
  },
  // The network map's actions: the engine stores and advertises the
  // parameters itself (canonical form, hash, epoch), so apply writes nothing.
  set_network_parameters: {
    validate(args) {
      checkDeadline(args.update_deadline);
    },
    apply: none,
  },
  cancel_network_parameters_update: {
    validate: none,
    apply: none,
  },
  set_service_configuration: {
    validate(args) {
      checkRecoveryThreshold(args.recovery_threshold);
    },
    apply(args) {
      checkRecoveryThreshold(args.recovery_threshold);
      gavel.kv.set(SERVICE_CONFIG, SINGLETON, { ...serviceConfig(), ...args });
    },
  },
};

// Governance tables of the default constitution and the small readers the
// other modules share. Values are JSON; singletons live at key "".
// Keep in sync with engine/constitution/tables.go and README.md.

export const MEMBERS = "gov.members";
export const CONSTITUTION = "gov.constitution";
export const SNP_HOST_DATA = "gov.nodes.snp.host_data";
export const SNP_MEASUREMENTS = "gov.nodes.snp.measurements";
export const NODES = "gov.nodes.info";
export const JOIN_POLICY = "gov.nodes.join_policy";
export const JS_APP = "gov.js_app";
export const NETWORK_PARAMETERS = "gov.network_parameters.pending";
export const SERVICE_CONFIG = "gov.service.config";
export const JS_RUNTIME_OPTIONS = "gov.js_runtime_options";

export const SINGLETON = "";

// Settings used while the service configuration does not name them.
export const DEFAULT_SERVICE_CONFIG = {
  recovery_threshold: 1,
  max_actions_per_proposal: 32,
  max_open_proposals: 1000,
  replay_window_seconds: 300,
};

export function serviceConfig() {
  return { ...DEFAULT_SERVICE_CONFIG, ...gavel.kv.get(SERVICE_CONFIG, SINGLETON) };
}

// Index loops, not for-of with destructuring: resolve runs at every ballot
// and goja's iterator protocol is costly.
export function activeMemberIds() {
  const entries = gavel.kv.entries(MEMBERS);
  const ids = [];
  for (let i = 0; i < entries.length; i++) {
    if (entries[i][1].status === "Active") ids.push(entries[i][0]);
  }
  return ids;
}

// A small constitution for tests: every active member must vote for a
// proposal, and any vote against rejects it. It knows three actions.
const KNOWN = ["set_member", "set_constitution", "remove_node_join_policy"];

function activeMembers() {
  return gavel.kv.keys("gov.members").filter((id) => gavel.kv.get("gov.members", id).status === "Active");
}

export function validate(input) {
  const p = JSON.parse(input);
  for (const a of p.actions) {
    if (!KNOWN.includes(a.name)) return { valid: false, description: `no action ${a.name}` };
  }
  return { valid: true, description: "" };
}

export function resolve(proposal, proposerId, votes) {
  const active = activeMembers();
  if (votes.some((v) => !v.vote)) return "Rejected";
  const yes = votes.filter((v) => active.includes(v.member_id)).length;
  return yes === active.length ? "Accepted" : "Open";
}

export function apply(proposal) {
  for (const a of JSON.parse(proposal).actions) {
    if (a.name === "set_member") {
      gavel.kv.set("gov.members", gavel.pem.certDigestHex(a.args.cert), { cert: a.args.cert, status: "Active", member_data: null });
    }
    if (a.name === "set_constitution") gavel.kv.set("gov.constitution", "", a.args.constitution);
    if (a.name === "remove_node_join_policy") gavel.kv.delete("gov.nodes.join_policy", "");
  }
}

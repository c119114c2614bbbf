// Accepts everything and applies set_constitution: a constitution that
// keeps governance repairable, as a target for tests.
export function validate() { return { valid: true, description: "" }; }
export function resolve() { return "Accepted"; }
export function apply(proposal) {
  for (const a of JSON.parse(proposal).actions) {
    if (a.name === "set_constitution") gavel.kv.set("gov.constitution", "", a.args.constitution);
  }
}

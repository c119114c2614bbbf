// Builds nested template literals over a 4 Mi-character string while loading.
const s = "x".repeat(1 << 22);
const t = `${s}${s}${s}${s}${s}${s}${s}${s}`;
export function validate() { return { valid: t.length > 0, description: "" }; }
export function resolve() { return "Accepted"; }
export function apply(proposal) {
  for (const a of JSON.parse(proposal).actions) {
    if (a.name === "set_constitution") gavel.kv.set("gov.constitution", "", a.args.constitution);
  }
}

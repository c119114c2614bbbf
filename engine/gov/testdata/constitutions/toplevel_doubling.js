// Allocates forever while loading, before code that is otherwise fine.
let s = "x";
while (true) s += s;
export function validate() { return { valid: true, description: "" }; }
export function resolve() { return "Accepted"; }
export function apply(proposal) {
  for (const a of JSON.parse(proposal).actions) {
    if (a.name === "set_constitution") gavel.kv.set("gov.constitution", "", a.args.constitution);
  }
}

// Every proposal is accepted at once, and apply throws.
export function validate() { return { valid: true, description: "" }; }
export function resolve() { return "Accepted"; }
export function apply() { gavel.kv.set("gov.js_app", "", { half: "written" }); throw new Error("apply refuses"); }

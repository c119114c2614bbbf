// resolve answers with something that is not a proposal state.
export function validate() { return { valid: true, description: "" }; }
export function resolve() { return 42; }
export function apply() {}

// resolve never returns.
export function validate() { return { valid: true, description: "" }; }
export function resolve() { for (;;) {} }
export function apply() {}

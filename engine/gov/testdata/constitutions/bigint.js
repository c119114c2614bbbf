// BigInt arithmetic cannot be metered: the literal does not compile.
export function validate() { return { valid: ((1n << 60000000n) - 1n).toString().length > 0, description: "" }; }
export function resolve() { return "Accepted"; }
export function apply() {}

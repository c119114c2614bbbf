// resolve allocates without bound.
export function validate() { return { valid: true, description: "" }; }
export function resolve() {
  const hoard = [];
  for (;;) hoard.push(new Array(1024).fill("x".repeat(64)));
}
export function apply() {}

// validate never returns.
export function validate() { for (;;) {} }
export function resolve() { return "Open"; }
export function apply() {}

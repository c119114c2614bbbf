// validate returns a string instead of {valid, description}.
export function validate() { return "looks fine"; }
export function resolve() { return "Open"; }
export function apply() {}

// validate(input) runs once when a proposal is submitted. input is the raw
// proposal JSON; the result is { valid, description }. It never throws for
// bad input: every problem is described, joined by "; ".
import { findAction } from "./actions.js";
import { serviceConfig } from "./tables.js";

export function validate(input) {
  let proposal;
  try {
    proposal = JSON.parse(input);
  } catch (e) {
    return { valid: false, description: `proposal is not JSON: ${e.message}` };
  }
  const shape = gavel.schema.validate("proposal", proposal);
  if (shape !== null) {
    return { valid: false, description: `proposal: ${shape}` };
  }
  const max = serviceConfig().max_actions_per_proposal;
  if (proposal.actions.length > max) {
    return { valid: false, description: `proposal has ${proposal.actions.length} actions; max_actions_per_proposal is ${max}` };
  }
  const errors = [];
  proposal.actions.forEach((action, position) => {
    const definition = findAction(action.name);
    if (definition === undefined) {
      errors.push(`${action.name} at position ${position}: no such action`);
      return;
    }
    const args = action.args ?? {};
    const problem = gavel.schema.validate(`actions/${action.name}`, args);
    if (problem !== null) {
      errors.push(`${action.name} at position ${position}: ${problem}`);
      return;
    }
    try {
      definition.validate(args);
    } catch (e) {
      errors.push(`${action.name} at position ${position}: ${e instanceof Error ? e.message : String(e)}`);
    }
  });
  return { valid: errors.length === 0, description: errors.join("; ") };
}

// apply(proposal, proposalId) runs once a proposal is Accepted. Its writes
// through gavel.kv are the entry's write set; a throw fails the proposal and
// writes nothing.
import { findAction } from "./actions.js";

export function apply(proposal, proposalId) {
  for (const action of JSON.parse(proposal).actions) {
    const definition = findAction(action.name);
    if (definition === undefined) throw new Error(`${action.name}: no such action`);
    definition.apply(action.args ?? {}, proposalId);
  }
}

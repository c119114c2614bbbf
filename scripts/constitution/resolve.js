// resolve(proposal, proposerId, votes, proposalId) runs after every ballot.
// A proposal is Accepted once a strict majority of the active members voted
// for it, and Rejected once it can no longer get there (so also when a
// majority voted against). Only active members' votes count, each once; the
// proposer's vote counts only if they cast one, as in CCF.
import { activeMemberIds } from "./tables.js";

export function resolve(proposal, proposerId, votes) {
  const active = Object.create(null);
  const ids = activeMemberIds();
  for (let i = 0; i < ids.length; i++) active[ids[i]] = true;
  const counted = Object.create(null);
  let yes = 0;
  let no = 0;
  for (let i = 0; i < votes.length; i++) {
    const v = votes[i];
    if (active[v.member_id] !== true || counted[v.member_id] === true) continue;
    counted[v.member_id] = true;
    if (v.vote === true) yes++;
    else no++;
  }
  const needed = Math.floor(ids.length / 2) + 1;
  if (yes >= needed) return "Accepted";
  if (ids.length - no < needed) return "Rejected";
  return "Open";
}

// Package gov owns governance as CCF runs it: members' signed proposals,
// ballots and withdrawals executed against the constitution in force.
// Commands here are pure: given the governance tables and the entry's
// facts they return the write set — the proposal's record, the request's
// replay record, and exactly what the constitution's apply wrote — and the
// answer. Signatures are checked before sequencing (Verify); membership,
// replay window, proposal state and the constitution are checked in order
// (Execute), so an auditor re-executing an entry gets the same write set.
package gov

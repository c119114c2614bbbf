// Package nodes owns the node commands of the ledger: a node's join
// (verified on the stateless side — its signature, its attestation
// evidence, its transparent statement — then judged against state: trusted
// host data, or the join policy) and the delete of a retired node, and the
// fold of the nodes table that says which retirements a signature covers
// (retired_committed). Governance moves nodes between states (the
// constitution's transition_node_to_trusted and remove_node); this package
// adds them and removes them. It also owns the node read model's fold
// (Projector, model.go): nodes by status, retirements and whether a
// signature covers them, trusted host data with their security policies
// checked, the join policy in force, folded from write sets alone. It is
// pure: no I/O, no clock.
package nodes

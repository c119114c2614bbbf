// Package nodes owns the node commands of the ledger: a node's join
// (verified on the stateless side — its signature, its attestation
// evidence, its transparent statement — then judged against state: trusted
// host data, or the join policy) and the delete of a retired node, and the
// fold of the nodes table that says which retirements a signature covers
// (retired_committed). Governance moves nodes between states (the
// constitution's transition_node_to_trusted and remove_node); this package
// adds them and removes them. It is pure: no I/O, no clock.
package nodes

// Package projections owns gavel's read models: the answers to queries,
// folded from the ledger's tables. Each one reads only state that the log
// rebuilds (a replica's pebble tables, or an auditor's in-memory fold), so
// any replica, follower or auditor answers a query the same way: the
// governance views over the tables, and the node views (nodes by status,
// removable nodes, trusted host data, the join policy in force) over the
// node read model that nodes.Projector folds into pebble beside the state,
// read through one snapshot.
package projections

// Package projections owns gavel's read models: the answers to queries,
// folded from the ledger's tables. Each one reads only state that the log
// rebuilds (a replica's pebble tables, or an auditor's in-memory fold), so
// any replica, follower or auditor answers a query the same way. Today it
// holds the governance views; the network map, nodes and removable nodes
// join it with the issues that build them.
package projections

// Package exec owns the commands gavel executes: each turns a verified
// request and a read-only view of state into a write set and an answer,
// with no I/O, clock or randomness of its own.
package exec

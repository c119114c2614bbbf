// Package natslog owns gavel's use of NATS JetStream: the embedded server
// and its users, the GAVEL_LEDGER and GAVEL_FEEDS streams, the atomic batch
// publish that appends entries to the log, and reading the log back.
//
// The log is the truth: a batch is either stored whole with contiguous
// sequences after the expected last sequence, or not at all. Every answer
// from the server is mapped to a typed *engine.Error at this boundary.
package natslog

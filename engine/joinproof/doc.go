// Package joinproof owns the structural validation of the transparent
// statement a joining node presents when its host data is not trusted: the
// checks CCF makes before it runs the join policy (src/node/quote.cpp,
// verify_code_transparent_statement), in CCF's order, and the policy's input
// — the array apply(transparent_statements) receives, in the shape of CCF's
// documentation (doc/operations/code_upgrade.rst, "Policy Input Schema").
//
// It is pure: the statement's bytes, the node's host data, this service's
// identity (its receipt keys) and the entry's time go in; a Validated
// statement or a refusal comes out. Refusals are CCF's: an *engine.Error,
// code InvalidQuote (401), wrapping one of the Err values of this package.
package joinproof

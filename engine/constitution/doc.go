// Package constitution owns gavel's deterministic JavaScript runtime for
// governance: it bundles a constitution (ES modules exporting validate,
// resolve and apply, CCF-style) and ballots (a module exporting vote) with
// esbuild, compiles them once for goja, and runs each call in a sealed
// sandbox with the entry's time, a fixed Math.random, no I/O, a
// deterministic budget (fuel, counted by instrumenting the compiled source:
// instrument.go, fuel.go) and wall-clock and heap safety nets. Scripts see the governance tables
// through gavel.kv; only apply may write, and its writes are the entry's
// engine.WriteSet.
//
// Isolation: each call gets a fresh instance of its bundle (module state
// never outlives a call; only compiled programs are cached) inside a pooled
// goja runtime whose intrinsics, global object and host API are frozen, so
// one call cannot influence the next. The instance is usually made ahead,
// off the caller's path, by running only the module's own top level
// (prepare.go); one whose top level reaches the host is made in the call.
// See README.md in scripts/constitution for the tables and actions of the
// default constitution, and Limits for every bound and its trade-off.
package constitution

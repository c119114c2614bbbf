// Package schemas owns gavel's JSON Schemas (draft 2020-12): the proposal and
// ballot bodies and the arguments of every action of the default
// constitution. They are embedded, compiled once, served as-is at /schemas/
// (FS) and checked with santhosh-tekuri/jsonschema/v6 (Validate).
//
// A schema is named by its path without ".json": "proposal", "ballot",
// "actions/set_member".
package schemas

// Package netmap owns the Corda network map and network parameters as pure
// commands: signed NodeInfo (parse, verify, publish with Corda's rules),
// network parameters (canonical encoding, hash, validation), the governed
// update process (set, cancel, node acknowledgement, flag day) and the map
// payload derived from state. Nothing here does I/O or reads a clock: every
// time is an entry's time from engine.Facts or state, so an auditor
// re-executing an entry gets the same write set.
//
// Trust levels are in the names: ParseNodeInfo checks structure,
// VerifyNodeInfo adds the node's signature, and the commands (Publish, Ack,
// FlagDay) check state.
//
// Wiring: handlers verify (VerifyNodeInfo, VerifyAck) against a
// NodeDirectory over the replica's state and hand Publish or Ack to the
// sequencer; an accepted set_network_parameters or
// cancel_network_parameters_update adds ParsedUpdate.Apply's or
// ApplyCancelUpdate's writes to the accepting entry; the primary appends
// the FlagDay that DueFlagDay returns; followers and the auditor rebuild
// each entry's command with Decode. The read side computes Map as of the
// last applied entry's time: a MapIndex built once (Map is its full build)
// and folded forward with each applied entry's writes, which keeps the
// payload encoded (a sorted run of hash items) so that MapSigner signs a
// changed map with one copy and one hash of it.
package netmap

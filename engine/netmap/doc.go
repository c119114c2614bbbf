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
package netmap

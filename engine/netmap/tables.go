package netmap

import "github.com/gavelhq/gavel/engine"

// Entry kinds of the network map; each is one subject token.
const (
	KindNodeInfo = engine.KindNodeInfo // a node's signed NodeInfo
	KindNodeAck  = engine.KindNodeAck  // a node's acceptance of a pending update
	KindFlagDay  = engine.KindFlagDay  // the pending update comes into force
)

// Tables the engine keeps for the map. They sit outside "gov." so that no
// constitution can write them; every value is JSON except TableNodeInfos.
const (
	// TableNodeInfos: NodeInfo hash → the signed NodeInfo (COSE_Sign1), kept
	// for ever so a hash once in the map stays retrievable.
	TableNodeInfos = "gavel.netmap.node_infos"
	// TableNodes: node id → NodeState, the node's current NodeInfo.
	TableNodes = "gavel.netmap.nodes"
	// TableNames: normalised legal name → node id holding it.
	TableNames = "gavel.netmap.names"
	// TableSeen: SeenKey(last seen, node id) → SeenValue(epoch, hash),
	// newest first, so the read side finds the nodes inside the event
	// horizon by a range that stops at the first stale key, without reading
	// TableNodes.
	TableSeen = "gavel.netmap.seen"
	// TableParameters: parameters hash → canonical parameters JSON, every
	// set ever advertised or in force.
	TableParameters = "gavel.netmap.parameters"
	// TableCurrent: "" → Current, the parameters in force.
	TableCurrent = "gavel.netmap.current"
	// TableEpochs: EpochKey(epoch) → parameters hash in force from it.
	TableEpochs = "gavel.netmap.epochs"
	// TablePending: "" → Pending, the advertised update, absent when none.
	TablePending = "gavel.netmap.pending"
	// TableAcks: AckKey(hash, node id) → Ack record, irrevocable.
	TableAcks = "gavel.netmap.acks"
	// TableAccepted: node id → the last parameters hash it accepted.
	TableAccepted = "gavel.netmap.accepted"
	// TableLimits: "" → Limits, fixed at genesis so that every replica and
	// the auditor check NodeInfos and parameters with the same limits.
	TableLimits = "gavel.netmap.limits"
)

// NodesDirectoryTable is the governance nodes table (constitution.TableNodes)
// that TableDirectory reads by default.
const NodesDirectoryTable = "gov.nodes.info"

// Singleton is the key of single-record tables.
const Singleton = ""

// Node statuses, CCF's.
const (
	StatusPending = "Pending"
	StatusTrusted = "Trusted"
	StatusRetired = "Retired"
)

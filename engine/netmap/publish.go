package netmap

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/gavelhq/gavel/engine"
)

// Publish publishes a verified NodeInfo with Corda's rules: only Trusted
// nodes; not below minimum_platform_version; a legal name is held by one
// node's key (until that node is retired or deleted); a higher serial
// replaces; the identical payload again is a
// success that writes nothing; another payload with an equal or a lower
// serial is refused.
//
// An identical re-publish is also the heartbeat: it writes only when it
// must, which is when the node's last publish is older than half the event
// horizon (its map membership would lapse) or predates the parameters in
// force (it left the map at a flag day and returns). Then it writes the
// node's last-seen time and nothing else.
type Publish struct {
	Info  VerifiedNodeInfo
	Nodes DirectoryFunc
}

// PublishResult is the answer to a publish.
type PublishResult struct {
	NodeInfoHash string `json:"node_info_hash"`
	TxID         string `json:"txid"` // the entry that holds this NodeInfo
}

func (c Publish) Kind() engine.EntryKind { return KindNodeInfo }
func (c Publish) Input() []byte          { return c.Info.Raw }

func (c Publish) Execute(st engine.StateReader, f engine.Facts) (engine.Effect, error) {
	info := c.Info
	dir := directoryOf(c.Nodes, st)
	rec, _, err := lookupNode(dir, info.NodeID)
	if err != nil {
		return engine.Effect{}, err
	}
	if err := requireTrusted(rec); err != nil {
		return engine.Effect{}, err
	}
	cur, err := LoadCurrent(st)
	if err != nil {
		return engine.Effect{}, err
	}
	if info.Info.PlatformVersion < cur.MinimumPlatform {
		return engine.Effect{}, engine.Errorf(engine.KindForbidden, CodePlatformVersionTooLow,
			"platform_version %d is below the network's minimum_platform_version %d", info.Info.PlatformVersion, cur.MinimumPlatform)
	}
	for _, n := range info.Names {
		holder, ok, err := st.Get(TableNames, n)
		if err != nil {
			return engine.Effect{}, err
		}
		if !ok || string(holder) == info.NodeID {
			continue
		}
		// A retired or deleted node's names are free again.
		h, known, err := dir.Node(string(holder))
		if err != nil {
			return engine.Effect{}, err
		}
		if known && h.Status != StatusRetired {
			return engine.Effect{}, engine.Errorf(engine.KindConflict, CodeLegalNameTaken, "legal name %q is held under another node's key (%s)", n, holder)
		}
	}
	prev, had, err := LoadNode(st, info.NodeID)
	if err != nil {
		return engine.Effect{}, err
	}
	now := f.Time.UnixMilli()
	next := NodeState{NodeID: info.NodeID, Hash: info.Hash, Serial: info.Info.Serial, Names: info.Names,
		PlatformVersion: info.Info.PlatformVersion, TxID: f.TxID.String(), LastSeenMs: now, Epoch: cur.Epoch}
	var ws engine.WriteSet
	if had {
		switch {
		case prev.Hash == info.Hash:
			horizon := time.Duration(cur.EventHorizonSeconds) * time.Second
			if prev.Epoch >= cur.Epoch && time.Duration(now-prev.LastSeenMs)*time.Millisecond < horizon/2 {
				return replayed(PublishResult{NodeInfoHash: prev.Hash, TxID: prev.TxID})
			}
			next.TxID = prev.TxID // the NodeInfo is the one already held
		case info.Info.Serial > prev.Serial:
			for _, n := range prev.Names {
				if !slices.Contains(info.Names, n) {
					ws = append(ws, engine.Write{Table: TableNames, Key: n, Delete: true})
				}
			}
		case info.Info.Serial == prev.Serial:
			return engine.Effect{}, engine.Errorf(engine.KindConflict, CodeNodeInfoSerialConflict,
				"node %s already published another NodeInfo with serial %d; a change needs a higher serial", info.NodeID, prev.Serial)
		default:
			return engine.Effect{}, engine.Errorf(engine.KindConflict, CodeNodeInfoSerialTooLow,
				"serial %d is below node %s's current serial %d", info.Info.Serial, info.NodeID, prev.Serial)
		}
		ws = append(ws, engine.Write{Table: TableSeen, Key: SeenKey(prev.LastSeenMs, info.NodeID), Delete: true})
	}
	if !had || prev.Hash != info.Hash {
		ws = append(ws, engine.Write{Table: TableNodeInfos, Key: info.Hash, Value: info.Raw})
		for _, n := range info.Names {
			if !had || !slices.Contains(prev.Names, n) {
				ws = append(ws, engine.Write{Table: TableNames, Key: n, Value: []byte(info.NodeID)})
			}
		}
	}
	ws = append(ws, put(TableNodes, info.NodeID, next), engine.Write{Table: TableSeen, Key: SeenKey(now, info.NodeID), Value: SeenValue(next.Epoch, next.Hash)})
	return effect(ws, PublishResult{NodeInfoHash: info.Hash, TxID: next.TxID})
}

func replayed(result any) (engine.Effect, error) {
	b, err := json.Marshal(result)
	if err != nil {
		return engine.Effect{}, err
	}
	return engine.Effect{Writes: engine.WriteSet{}, Result: b, Replayed: true}, nil
}

func effect(ws engine.WriteSet, result any) (engine.Effect, error) {
	b, err := json.Marshal(result)
	if err != nil {
		return engine.Effect{}, err
	}
	return engine.Effect{Writes: ws, Result: b}, nil
}

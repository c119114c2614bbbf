package agent

import (
	"slices"
	"strings"

	"github.com/gavelhq/gavel/engine/netmap"
)

// NodeInfoFilePrefix starts every NodeInfo file name in
// additional-node-infos (Corda's NODE_INFO_FILE_NAME_PREFIX).
const NodeInfoFilePrefix = "nodeInfo-"

// File is one file of a folder as the caller read it.
type File struct {
	Name string
	Data []byte
}

// Report is a file that was skipped, and why.
type Report struct {
	File string
	Err  error
}

// FolderScan is what the additional-node-infos folder contributes.
type FolderScan struct {
	// Infos are the winning NodeInfos by node id.
	Infos map[string]netmap.VerifiedNodeInfo
	// Corrupt are nodeInfo-* files that do not parse or verify.
	Corrupt []Report
	// Ignored are files that are not NodeInfo files (.tmp included).
	Ignored []string
}

// ScanFolder applies Corda's NodeInfoWatcher rules: only nodeInfo-* files,
// .tmp files ignored (a copy in progress), corrupt files reported and
// skipped, and of two NodeInfos of one node the higher serial wins (on an
// equal serial, the smaller hash, so the outcome does not depend on the
// order files were read). NodeInfos are verified with the key they carry.
func ScanFolder(files []File, lim netmap.Limits) FolderScan {
	s := FolderScan{Infos: map[string]netmap.VerifiedNodeInfo{}}
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	for _, f := range files {
		if !strings.HasPrefix(f.Name, NodeInfoFilePrefix) || strings.HasSuffix(f.Name, ".tmp") {
			s.Ignored = append(s.Ignored, f.Name)
			continue
		}
		p, err := netmap.ParseNodeInfo(f.Data, lim)
		var v netmap.VerifiedNodeInfo
		if err == nil {
			v, err = p.SelfVerify()
		}
		if err != nil {
			s.Corrupt = append(s.Corrupt, Report{File: f.Name, Err: err})
			continue
		}
		if cur, ok := s.Infos[v.NodeID]; !ok || wins(v, cur) {
			s.Infos[v.NodeID] = v
		}
	}
	return s
}

func wins(a, b netmap.VerifiedNodeInfo) bool {
	if a.Info.Serial != b.Info.Serial {
		return a.Info.Serial > b.Info.Serial
	}
	return a.Hash < b.Hash
}

// FileName is the name a NodeInfo is saved under.
func FileName(v netmap.VerifiedNodeInfo) string { return NodeInfoFilePrefix + v.Hash }

// Merge combines the map's NodeInfos and the folder's: per node, the
// higher serial wins, so a file can override the map and the map's copy
// returns when the file is deleted.
func Merge(fromMap []netmap.VerifiedNodeInfo, fromFolder map[string]netmap.VerifiedNodeInfo) map[string]netmap.VerifiedNodeInfo {
	out := make(map[string]netmap.VerifiedNodeInfo, len(fromMap)+len(fromFolder))
	for _, v := range fromMap {
		if cur, ok := out[v.NodeID]; !ok || wins(v, cur) {
			out[v.NodeID] = v
		}
	}
	for id, v := range fromFolder {
		if cur, ok := out[id]; !ok || wins(v, cur) {
			out[id] = v
		}
	}
	return out
}

// Reconcile says which map hashes the cache lacks (fetch) and which cached
// hashes left the map (drop). Hashes in keep — the node's own NodeInfo,
// which may not be in the map yet, and the folder's — are never dropped.
func Reconcile(cached, inMap, keep []string) (fetch, drop []string) {
	has := func(list []string) map[string]bool {
		m := make(map[string]bool, len(list))
		for _, h := range list {
			m[h] = true
		}
		return m
	}
	c, m, k := has(cached), has(inMap), has(keep)
	for _, h := range inMap {
		if !c[h] {
			fetch = append(fetch, h)
		}
	}
	for _, h := range cached {
		if !m[h] && !k[h] {
			drop = append(drop, h)
		}
	}
	slices.Sort(fetch)
	slices.Sort(drop)
	return slices.Compact(fetch), slices.Compact(drop)
}

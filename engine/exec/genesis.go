package exec

import (
	"encoding/json"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/netmap"
)

// Genesis creates the service: its identity certificate, its ledger
// settings, its first node (the replica that writes it, a Trusted service
// node whose key authenticates the genesis entry itself) and its
// governance (members, constitution, configuration). It is the first entry
// of every ledger and is refused once the service exists.
type Genesis struct {
	ServiceCertPEM []byte
	Settings       ServiceSettings
	Node           engine.NodeRecord
	Governance     engine.WriteSet
	// NetworkMap gives the service its first network parameters and the
	// map's limits; Nodes are further nodes it trusts from the start (the
	// participants gavel bootstrap lists).
	NetworkMap *NetworkMapGenesis
	Nodes      []engine.NodeRecord
}

// NetworkMapGenesis is the network map's part of a genesis: the first
// parameters (a zero modified_time becomes the genesis entry's time), the
// limits every later check uses, and the network-map key's certificate.
type NetworkMapGenesis struct {
	Parameters netmap.NetworkParameters
	Limits     netmap.Limits
	CertPEM    []byte
}

// ServiceSettings are the service's ledger settings, recorded at genesis so
// that auditors know what the sequencer promised.
type ServiceSettings struct {
	SignatureEvery      int   `json:"signature_every"`
	SignatureIntervalMs int64 `json:"signature_interval_ms"`
	Virtual             bool  `json:"virtual_attestation"`
	// DevSNPRoot is a development ARK (PEM) the service trusts besides
	// AMD's roots (gavel serve --dev-snp-root): it proves nothing about
	// hardware, and /node/version says so.
	DevSNPRoot string `json:"dev_snp_root,omitempty"`
}

// Service table keys.
const (
	KeyServiceCertificate = "certificate"
	KeyServiceSettings    = "settings"
	// KeyNetworkMapCertificate is the network-map key's certificate, issued
	// by the service identity: what nodes verify the map and parameters by.
	KeyNetworkMapCertificate = "network_map_certificate"
)

func (g Genesis) Kind() engine.EntryKind { return engine.KindGenesis }
func (g Genesis) Input() []byte          { return nil }

func (g Genesis) Execute(st engine.StateReader, f engine.Facts) (engine.Effect, error) {
	if _, ok, err := st.Get(engine.TableService, KeyServiceCertificate); err != nil {
		return engine.Effect{}, err
	} else if ok {
		return engine.Effect{}, engine.Errorf(engine.KindConflict, "ServiceExists", "the service already has a genesis entry")
	}
	// Only the entry at seqno 1 authenticates itself (by the node it
	// records): a genesis anywhere else could never be read back.
	if f.TxID.Seqno != 1 {
		return engine.Effect{}, engine.Errorf(engine.KindConflict, "LedgerNotEmpty",
			"the ledger stream already holds %d messages but no genesis entry", f.TxID.Seqno-1)
	}
	settings, err := json.Marshal(g.Settings)
	if err != nil {
		return engine.Effect{}, err
	}
	result, _ := json.Marshal(map[string]string{"txid": f.TxID.String()})
	writes := append(engine.WriteSet{
		{Table: engine.TableService, Key: KeyServiceCertificate, Value: g.ServiceCertPEM},
		{Table: engine.TableService, Key: KeyServiceSettings, Value: settings},
	}, g.Governance...)
	if g.Node.NodeID != "" {
		writes = append(writes, g.Node.Write())
	}
	for _, n := range g.Nodes {
		writes = append(writes, n.Write())
	}
	if nm := g.NetworkMap; nm != nil {
		p := nm.Parameters
		if p.ModifiedTime.IsZero() {
			p.ModifiedTime = f.Time.UTC()
		}
		ws, err := netmap.GenesisWrites(st, p, f, nm.Limits)
		if err != nil {
			return engine.Effect{}, err
		}
		writes = append(writes, ws...)
		writes = append(writes, netmap.LimitsWrite(nm.Limits),
			engine.Write{Table: engine.TableService, Key: KeyNetworkMapCertificate, Value: nm.CertPEM})
	}
	return engine.Effect{Writes: writes, Result: result}, nil
}

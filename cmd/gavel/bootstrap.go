package main

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/gov"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/netmap"
	"github.com/gavelhq/gavel/engine/netmap/agent"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/nodeagent"
)

func init() {
	register("bootstrap", "make a test network: service, members and node folders (gavel bootstrap --dir D --nodes N --members M)", runBootstrap)
}

// Files gavel bootstrap writes.
const (
	// NetworkGenesisFile in a data folder gives gavel serve's genesis its
	// members, Trusted participant nodes and network parameters.
	networkGenesisFile = "network-genesis.json"
	nodeKeyFile        = "node_privk.pem"
	nodeConfigFile     = "nodeinfo.json"
	additionalInfosDir = "additional-node-infos"
	nodeInfoPrefix     = "nodeInfo-"
)

// networkGenesis is DIR/network-genesis.json.
type networkGenesis struct {
	MemberCerts []string            `json:"member_certs"` // PEM
	Nodes       []engine.NodeRecord `json:"nodes"`
	Parameters  json.RawMessage     `json:"parameters"` // canonical, epoch and modified_time fixed
}

// nodeConfig is a node folder's nodeinfo.json: what its agent publishes.
type nodeConfig struct {
	LegalName       string   `json:"legal_name"`
	Addresses       []string `json:"addresses"`
	PlatformVersion int      `json:"platform_version"`
	Serial          int64    `json:"serial"`
}

func runBootstrap(args []string, out, errOut io.Writer) int {
	fs := newFlags("bootstrap", errOut)
	dir := fs.String("dir", "", "network folder (required)")
	nodes := fs.Int("nodes", 3, "participant nodes")
	members := fs.Int("members", 1, "members")
	var notaries, names stringList
	fs.Var(&notaries, "notary", "legal name of a notary (repeatable); each is also a node")
	fs.Var(&names, "legal-name", "legal name of node i (repeatable, in order; default O=Node<i>,L=London,C=GB)")
	minPlatform := fs.Int("minimum-platform-version", 1, "minimum_platform_version of the parameters")
	platform := fs.Int("platform-version", 4, "platform_version the nodes publish")
	fs.Bool("json", false, "when not on a terminal, report progress as JSON lines on stderr")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 || *dir == "" {
		return usageError(errOut, fs, "--dir D is required, and no arguments are taken")
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(errOut, "gavel bootstrap: "+format+"\n", a...)
		return exitFailed
	}
	switch {
	case *dir == "":
		return fail("--dir is required")
	case *nodes < 1:
		return fail("--nodes must be at least 1, not %d", *nodes)
	case *members < 1:
		return fail("--members must be at least 1, not %d", *members)
	case *minPlatform < 1:
		return fail("--minimum-platform-version must be at least 1, not %d", *minPlatform)
	case len(names) > *nodes:
		return fail("--legal-name is given %d times for %d nodes", len(names), *nodes)
	case *platform < *minPlatform:
		return fail("--platform-version %d is below --minimum-platform-version %d", *platform, *minPlatform)
	}
	legal := make([]string, 0, *nodes+len(notaries))
	seen := map[string]string{}
	add := func(name, flagName string) error {
		norm, err := netmap.NormalizeLegalName(name)
		if err != nil {
			return fmt.Errorf("%s %q is not a legal name: %v", flagName, name, err)
		}
		if prev, ok := seen[norm]; ok {
			return fmt.Errorf("%s %q is a duplicate legal name (also given as %s)", flagName, name, prev)
		}
		seen[norm] = flagName
		legal = append(legal, name)
		return nil
	}
	for i := range *nodes {
		name, flagName := fmt.Sprintf("O=Node%d,L=London,C=GB", i), "--nodes"
		if i < len(names) {
			name, flagName = names[i], "--legal-name"
		}
		if err := add(name, flagName); err != nil {
			return fail("%v", err)
		}
	}
	for _, n := range notaries {
		if err := add(n, "--notary"); err != nil {
			return fail("%v", err)
		}
	}
	progress := newProgressMode(errOut, "bootstrap", "node folders", uint64(2*len(legal)), jsonFlagSet(fs))
	res, err := bootstrap(*dir, *members, legal, len(notaries), *minPlatform, *platform, time.Now(), progress)
	progress.done()
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(out, "network in %s: epoch %d, parameters %s; start it with: gavel serve --data %s\n",
		*dir, res.Epoch, res.Hash, filepath.Join(*dir, "service"))
	return exitOK
}

type bootstrapResult struct {
	Epoch int64
	Hash  string
}

// bootstrap writes the network. Existing keys are kept, so running it
// again unchanged gives the same parameters (same epoch, byte-identical
// files); a change of notaries or of the minimum platform version bumps
// the epoch.
// bootstrap counts each node folder made, then each filled with the
// others' NodeInfos, on prog (nil: nothing reported).
func bootstrap(dir string, members int, legal []string, nNotaries, minPlatform, platform int, now time.Time, prog *progress) (bootstrapResult, error) {
	svc := filepath.Join(dir, "service")
	if err := os.MkdirAll(svc, 0o755); err != nil {
		return bootstrapResult{}, err
	}
	id, err := replica.LoadOrCreateIdentity(svc, now)
	if err != nil {
		return bootstrapResult{}, err
	}
	mapKey, err := replica.LoadMapSigner(svc)
	if err != nil {
		return bootstrapResult{}, err
	}
	var g networkGenesis
	for i := range members {
		certPEM, err := keepOrMakeMember(filepath.Join(dir, "members"), fmt.Sprintf("member%d", i))
		if err != nil {
			return bootstrapResult{}, err
		}
		g.MemberCerts = append(g.MemberCerts, string(certPEM))
	}
	p := netmap.DefaultParameters()
	p.MinimumPlatformVersion = minPlatform
	for _, n := range legal[len(legal)-nNotaries:] {
		p.Notaries = append(p.Notaries, netmap.Notary{Identity: n, Validating: false})
	}
	p.ModifiedTime = now.UTC().Truncate(time.Second)
	if prev, err := readGenesisParameters(filepath.Join(svc, networkGenesisFile)); err == nil {
		p.Epoch = prev.Epoch
		same := p
		same.ModifiedTime, same.Epoch = prev.ModifiedTime, prev.Epoch
		if same.Equal(prev) {
			p = prev
		} else {
			p.Epoch = prev.Epoch + 1
		}
	}
	if err := p.Validate(netmap.DefaultLimits()); err != nil {
		return bootstrapResult{}, err
	}
	g.Parameters = p.Canonical()
	// ECDSA signatures differ each time: unchanged parameters keep the
	// signed file they had, so every copy stays byte-identical.
	signedPath := filepath.Join(svc, agent.ParametersFile)
	signedParams, err := os.ReadFile(signedPath)
	if _, h, verr := netmap.VerifySignedParameters(signedParams, mapKey.Public(), netmap.DefaultLimits()); err != nil || verr != nil || h != p.Hash() {
		if signedParams, err = netmap.SignParameters(mapKey, p); err != nil {
			return bootstrapResult{}, err
		}
		if err := os.WriteFile(signedPath, signedParams, 0o644); err != nil {
			return bootstrapResult{}, err
		}
	}
	mapCert, err := os.ReadFile(filepath.Join(svc, replica.MapCertFile))
	if err != nil {
		return bootstrapResult{}, err
	}
	type made struct {
		dir  string
		info []byte
	}
	var folders []made
	for i, name := range legal {
		nodeDir := filepath.Join(dir, "nodes", fmt.Sprintf("node%d", i))
		key, err := keepOrMakeNodeKey(nodeDir)
		if err != nil {
			return bootstrapResult{}, err
		}
		cfg := nodeConfig{LegalName: name, Addresses: []string{"127.0.0.1:" + strconv.Itoa(10000+i)}, PlatformVersion: platform, Serial: 1}
		info, err := netmap.SignNodeInfo(key, netmap.NodeInfo{Addresses: cfg.Addresses, LegalIdentities: []string{name},
			PlatformVersion: platform, Serial: cfg.Serial})
		if err != nil {
			return bootstrapResult{}, err
		}
		cb, _ := json.MarshalIndent(cfg, "", "  ")
		files := map[string][]byte{nodeConfigFile: append(cb, '\n'), agent.ParametersFile: signedParams,
			replica.ServiceCertFile: id.CertPEM, replica.MapCertFile: mapCert}
		for f, b := range files {
			if err := os.WriteFile(filepath.Join(nodeDir, f), b, 0o644); err != nil {
				return bootstrapResult{}, err
			}
		}
		g.Nodes = append(g.Nodes, participantRecord(key))
		folders = append(folders, made{nodeDir, info})
		prog.add(1)
	}
	for i, f := range folders {
		extra := filepath.Join(f.dir, additionalInfosDir)
		os.RemoveAll(extra)
		if err := os.MkdirAll(extra, 0o755); err != nil {
			return bootstrapResult{}, err
		}
		for j, o := range folders {
			if i == j {
				continue
			}
			h, err := netmap.ParseNodeInfo(o.info, netmap.DefaultLimits())
			if err != nil {
				return bootstrapResult{}, err
			}
			if err := os.WriteFile(filepath.Join(extra, nodeInfoPrefix+h.Hash), o.info, 0o644); err != nil {
				return bootstrapResult{}, err
			}
		}
		prog.add(1)
	}
	gb, _ := json.MarshalIndent(g, "", "  ")
	if err := os.WriteFile(filepath.Join(svc, networkGenesisFile), append(gb, '\n'), 0o644); err != nil {
		return bootstrapResult{}, err
	}
	return bootstrapResult{Epoch: p.Epoch, Hash: p.Hash()}, nil
}

func readGenesisParameters(path string) (netmap.NetworkParameters, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return netmap.NetworkParameters{}, err
	}
	var g networkGenesis
	if err := json.Unmarshal(b, &g); err != nil {
		return netmap.NetworkParameters{}, fmt.Errorf("%s: %w", path, err)
	}
	return netmap.ParseParameters(g.Parameters, netmap.DefaultLimits())
}

// loadNetworkGenesis reads DATA/network-genesis.json for gavel serve; a
// folder without one gets none (default parameters, no participants).
func loadNetworkGenesis(data string) ([]gov.InitialMember, replica.NetmapConfig, error) {
	var nm replica.NetmapConfig
	b, err := os.ReadFile(filepath.Join(data, networkGenesisFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nm, nil
	}
	if err != nil {
		return nil, nm, err
	}
	var g networkGenesis
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, nm, fmt.Errorf("%s: %w", networkGenesisFile, err)
	}
	p, err := netmap.ParseParameters(g.Parameters, netmap.DefaultLimits())
	if err != nil {
		return nil, nm, fmt.Errorf("%s: %w", networkGenesisFile, err)
	}
	var members []gov.InitialMember
	for _, c := range g.MemberCerts {
		members = append(members, gov.InitialMember{CertPEM: []byte(c)})
	}
	nm.Parameters, nm.Nodes = &p, g.Nodes
	return members, nm, nil
}

func keepOrMakeMember(dir, name string) ([]byte, error) {
	certPath, keyPath := filepath.Join(dir, name+"_cert.pem"), filepath.Join(dir, name+"_privk.pem")
	if b, err := os.ReadFile(certPath); err == nil {
		return b, nil
	}
	certPEM, keyPEM, err := govreq.Keygen("ES256", name)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	return certPEM, os.WriteFile(certPath, certPEM, 0o644)
}

// keepOrMakeNodeKey reads or creates a node folder's Ed25519 key.
func keepOrMakeNodeKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, nodeKeyFile)
	if b, err := os.ReadFile(path); err == nil {
		return nodeagent.ParseKey(b)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	return key, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func participantRecord(key crypto.Signer) engine.NodeRecord {
	pub := key.Public().(ed25519.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	return engine.NodeRecord{NodeID: engine.NodeID(pub), Status: engine.NodeTrusted, Role: "participant",
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
}

// Package nodeagent owns the joining node's side: its key files, its join
// config (node.json), the attestation evidence that config describes, and
// the join itself — sign, send, and poll until the node is Trusted — so
// that any program can embed a gavel node's join.
package nodeagent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/attest"
	"github.com/gavelhq/gavel/engine/attest/devsnp"
	"github.com/gavelhq/gavel/engine/nodes"
)

// Key file names, as CCF names a node's.
const (
	KeyFile  = "node_privk.pem"
	CertFile = "node_cert.pem"
)

// Config is a node's join config (node.json).
type Config struct {
	Role        string      `json:"role"`
	Address     string      `json:"address"`
	CodeVersion string      `json:"code_version,omitempty"`
	Attestation Attestation `json:"attestation"`
	// The transparent statement of the node's host data; CCF's newer name
	// code_transparent_statement_path is read too.
	StatementPath    string          `json:"host_data_transparent_statement_path,omitempty"`
	CodeStatementCCF string          `json:"code_transparent_statement_path,omitempty"`
	NodeData         json.RawMessage `json:"node_data,omitempty"`
}

// Attestation says how the node attests: virtual (declared values),
// sev-snp from files (real hardware), or sev-snp signed by a development
// chain (dev_signer, made by `gavel dev snp-signer`).
type Attestation struct {
	Format       string `json:"format"`
	HostData     string `json:"host_data,omitempty"`
	Measurement  string `json:"measurement,omitempty"`
	Report       string `json:"report,omitempty"`
	Endorsements string `json:"endorsements,omitempty"`
	DevSigner    string `json:"dev_signer,omitempty"`
}

// ErrConfig is a join config that cannot be used.
var ErrConfig = errors.New("invalid node config")

// LoadConfig reads a join config; relative paths in it are taken from the
// config's folder.
func LoadConfig(path string) (Config, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, "", err
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, "", fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
	}
	return c, filepath.Dir(path), nil
}

// Keygen writes a fresh Ed25519 node key and self-signed certificate into
// dir (node_privk.pem, node_cert.pem) and returns the node id.
func Keygen(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	id := engine.NodeID(pub)
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "gavel node " + id[:16]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, KeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", err
	}
	return id, os.WriteFile(filepath.Join(dir, CertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// LoadKey reads the node key Keygen wrote.
func LoadKey(dir string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, err
	}
	key, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KeyFile, err)
	}
	return key, nil
}

// ParseKey reads a node's Ed25519 key, PEM-encoded PKCS#8.
func ParseKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("node key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("node key is not Ed25519")
	}
	return key, nil
}

// Request builds the signed join request the config describes for key,
// its evidence binding the key (REPORT_DATA = SHA-256 of its DER).
func Request(c Config, base string, key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	rd := attest.ReportDataFor(der)
	ev, err := evidence(c.Attestation, base, rd)
	if err != nil {
		return nil, err
	}
	evJSON, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	req := nodes.JoinRequest{Role: c.Role, Address: c.Address, CodeVersion: c.CodeVersion, Attestation: evJSON, NodeData: c.NodeData}
	path := c.StatementPath
	if path == "" {
		path = c.CodeStatementCCF
	}
	if path != "" {
		if req.TransparentStatement, err = os.ReadFile(resolve(base, path)); err != nil {
			return nil, fmt.Errorf("transparent statement: %w", err)
		}
	}
	return nodes.SignJoin(key, req)
}

func evidence(a Attestation, base string, rd [64]byte) (attest.Evidence, error) {
	switch {
	case a.Format == "virtual":
		hd, m, err := declared(a, 0)
		if err != nil {
			return attest.Evidence{}, err
		}
		return attest.VirtualEvidence(hd, m, rd[:]), nil
	case a.Format == "sev-snp" && a.DevSigner != "":
		hd, m, err := declared(a, 48)
		if err != nil {
			return attest.Evidence{}, err
		}
		var m48 [48]byte
		copy(m48[:], m)
		return devsnp.SignReport(resolve(base, a.DevSigner), hd, m48, rd)
	case a.Format == "sev-snp":
		report, err := os.ReadFile(resolve(base, a.Report))
		if err != nil {
			return attest.Evidence{}, fmt.Errorf("report: %w", err)
		}
		endorsements, err := os.ReadFile(resolve(base, a.Endorsements))
		if err != nil {
			return attest.Evidence{}, fmt.Errorf("endorsements: %w", err)
		}
		return attest.Evidence{Format: attest.FormatSEVSNP, Evidence: report, Endorsements: endorsements}, nil
	}
	return attest.Evidence{}, fmt.Errorf("%w: attestation format %q is neither virtual nor sev-snp", ErrConfig, a.Format)
}

// declared reads the config's host data (32 bytes) and measurement (size
// bytes, or 1..64 when size is 0).
func declared(a Attestation, size int) ([32]byte, []byte, error) {
	var hd [32]byte
	b, err := hex.DecodeString(a.HostData)
	if err != nil || len(b) != 32 {
		return hd, nil, fmt.Errorf("%w: host_data must be 32 bytes in hex", ErrConfig)
	}
	copy(hd[:], b)
	m, err := hex.DecodeString(a.Measurement)
	if err != nil || len(m) == 0 || len(m) > 64 || (size > 0 && len(m) != size) {
		return hd, nil, fmt.Errorf("%w: measurement must be hex (%d bytes for sev-snp)", ErrConfig, 48)
	}
	return hd, m, nil
}

func resolve(base, p string) string {
	if filepath.IsAbs(p) || base == "" {
		return p
	}
	return filepath.Join(base, p)
}

// Join sends the join request and, with wait, polls (every poll) until
// the node is Trusted or ctx ends. It returns the last answer.
func Join(ctx context.Context, c *client.Client, signed []byte, wait bool, poll time.Duration) (client.JoinResult, error) {
	for {
		res, err := c.Join(ctx, signed)
		if err != nil || !wait || res.NodeStatus == nodes.StatusTrusted {
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, engine.Wrap(engine.KindPending, "StillPending", ctx.Err(), "node %s is still %s", res.NodeID, res.NodeStatus)
		case <-time.After(poll):
		}
	}
}

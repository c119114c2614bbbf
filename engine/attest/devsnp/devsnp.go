// Package devsnp owns gavel's development SEV-SNP chain: an AMD-shaped ARK,
// ASK and VCEK (gavel's own maker, chain.go, not go-sev-guest's test signer,
// which would pull the testing package into the binary), and real SEV-SNP
// attestation reports signed by that VCEK, so that the real SNP verification
// path (package attest) runs on any machine. A service trusts the chain only
// when told to (its ARK in attest.Policy.Roots); nothing here is trusted by
// default, and the chain proves nothing about hardware.
package devsnp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"

	"github.com/gavelhq/gavel/engine/attest"
)

// Files Create writes in its directory.
const (
	ARKFile     = "ark.pem"
	ASKFile     = "ask.pem"
	VCEKFile    = "vcek.pem"
	VCEKKeyFile = "vcek_privk.pem"
)

// The development chain's product: a Milan B1, as go-sev-guest's test signer
// makes by default; CPUID is its CCF CPUID key (attest.Policy.MinimumTCB).
const (
	ProductName = "Milan-B1"
	CPUID       = "00a00f11"
	family      = 0x19
	model       = 0x01
	stepping    = 0x01
)

// TCB is the TCB the development VCEK endorses and its reports carry, in
// Milan's layout (boot loader 4, TEE 0, SNP 24, microcode 219: a current
// Milan's levels).
var TCB = kds.TCBParts{BlSpl: 4, TeeSpl: 0, SnpSpl: 24, UcodeSpl: 219}

// TCBVersion is TCB as attest reports it.
var TCBVersion = attest.TCB{BootLoader: 4, TEE: 0, SNP: 24, Microcode: 219}

// arkKeyBits is AMD's ARK and ASK size.
const arkKeyBits = 4096

// Keys are the chain's private keys; only the VCEK's is kept after Create.
type Keys struct {
	ARK, ASK *rsa.PrivateKey
	VCEK     *ecdsa.PrivateKey
}

// NewKeys generates fresh keys of AMD's shapes: RSA-4096 ARK and ASK (in
// parallel: each takes seconds), a P-384 VCEK.
func NewKeys() (Keys, error) {
	var k Keys
	var askErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		k.ASK, askErr = rsa.GenerateKey(rand.Reader, arkKeyBits)
	}()
	ark, err := rsa.GenerateKey(rand.Reader, arkKeyBits)
	<-done
	if err = errors.Join(err, askErr); err != nil {
		return Keys{}, err
	}
	k.ARK = ark
	if k.VCEK, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		return Keys{}, err
	}
	return k, nil
}

// Signer signs SEV-SNP reports as a development VCEK.
type Signer struct {
	ARK, ASK, VCEK *x509.Certificate
	key            *ecdsa.PrivateKey
}

// New certifies keys as an AMD-shaped chain (chain.go): ARK and ASK valid
// from created for 25 years, the VCEK (hwID zero, the TCB above) until
// created plus 7 years.
func New(keys Keys, created time.Time) (*Signer, error) {
	if keys.ARK == nil || keys.ASK == nil || keys.VCEK == nil {
		return nil, errors.New("devsnp: ARK, ASK and VCEK keys are all required")
	}
	ark, ask, vcek, err := makeChain(keys, created, TCB, [abi.ChipIDSize]byte{})
	if err != nil {
		return nil, err
	}
	return &Signer{ARK: ark, ASK: ask, VCEK: vcek, key: keys.VCEK}, nil
}

// Create makes a chain of fresh keys (NewKeys) and writes it (Write).
func Create(dir string, now time.Time) (*Signer, error) {
	keys, err := NewKeys()
	if err != nil {
		return nil, err
	}
	return Write(dir, keys, now)
}

// Write certifies keys as a chain valid from a day before now (clocks
// differ) and writes ark.pem, ask.pem, vcek.pem and the VCEK's key
// vcek_privk.pem (PKCS #8, mode 0600) into dir, which it creates. The ARK and
// ASK keys are not written: nothing more is ever certified.
func Write(dir string, keys Keys, now time.Time) (*Signer, error) {
	s, err := New(keys, now.Add(-24*time.Hour).Truncate(time.Second))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(keys.VCEK)
	if err != nil {
		return nil, err
	}
	files := []struct {
		name  string
		block *pem.Block
		mode  os.FileMode
	}{
		{ARKFile, &pem.Block{Type: "CERTIFICATE", Bytes: s.ARK.Raw}, 0o644},
		{ASKFile, &pem.Block{Type: "CERTIFICATE", Bytes: s.ASK.Raw}, 0o644},
		{VCEKFile, &pem.Block{Type: "CERTIFICATE", Bytes: s.VCEK.Raw}, 0o644},
		{VCEKKeyFile, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}, 0o600},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), pem.EncodeToMemory(f.block), f.mode); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Load reads a chain Create wrote.
func Load(dir string) (*Signer, error) {
	var s Signer
	for _, f := range []struct {
		name string
		out  **x509.Certificate
	}{{ARKFile, &s.ARK}, {ASKFile, &s.ASK}, {VCEKFile, &s.VCEK}} {
		der, err := readPEM(filepath.Join(dir, f.name), "CERTIFICATE")
		if err != nil {
			return nil, err
		}
		if *f.out, err = x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("devsnp: %s: %w", f.name, err)
		}
	}
	der, err := readPEM(filepath.Join(dir, VCEKKeyFile), "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("devsnp: %s: %w", VCEKKeyFile, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(s.VCEK.PublicKey) {
		return nil, fmt.Errorf("devsnp: %s is not the key of %s", VCEKKeyFile, VCEKFile)
	}
	s.key = key
	return &s, nil
}

// LoadRoot reads the ARK a service started with --dev-snp-root trusts.
func LoadRoot(path string) (*x509.Certificate, error) {
	der, err := readPEM(path, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func readPEM(path, typ string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != typ {
		return nil, fmt.Errorf("devsnp: %s holds no PEM %s", path, typ)
	}
	return b.Bytes, nil
}

// Endorsements is the chain as a joining node sends it: PEM VCEK, ASK, ARK.
func (s *Signer) Endorsements() []byte {
	var out []byte
	for _, c := range []*x509.Certificate{s.VCEK, s.ASK, s.ARK} {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// Report is what a development report says. The zero values of the other
// fields give what a sound guest's report has: version 3, VMPL 0, SMT
// allowed and no debugging, signed by the VCEK, the chain's TCB, chip ID
// zero (the development VCEK's hwID).
type Report struct {
	HostData    [32]byte
	Measurement [48]byte
	ReportData  [64]byte

	Version     uint32 // 0: 3
	VMPL        uint32
	Debug       bool
	MigrateMA   bool
	SigningKey  abi.ReportSigner // 0: the VCEK
	MaskChipKey bool
	ChipID      [abi.ChipIDSize]byte
	TCB         *kds.TCBParts // nil: the chain's
}

// Sign lays r out as an SEV-SNP ATTESTATION_REPORT (AMD SEV-SNP ABI, table
// 22) and signs it with the VCEK: ECDSA P-384 over SHA-384 of its first 0x2A0
// bytes, r and s little-endian.
func (s *Signer) Sign(r Report) ([]byte, error) {
	tcb := TCB
	if r.TCB != nil {
		tcb = *r.TCB
	}
	tcbVersion, err := kds.ComposeTCBParts(tcb)
	if err != nil {
		return nil, err
	}
	version := r.Version
	if version == 0 {
		version = abi.ReportVersion3
	}
	raw := make([]byte, abi.ReportSize)
	le := binary.LittleEndian
	le.PutUint32(raw[0x00:], version)
	le.PutUint64(raw[0x08:], abi.SnpPolicyToBytes(abi.SnpPolicy{SMT: true, Debug: r.Debug, MigrateMA: r.MigrateMA}))
	le.PutUint32(raw[0x30:], r.VMPL)
	le.PutUint32(raw[0x34:], abi.SignEcdsaP384Sha384)
	le.PutUint64(raw[0x38:], uint64(tcbVersion)) // current TCB
	le.PutUint32(raw[0x48:], abi.ComposeSignerInfo(abi.SignerInfo{SigningKey: r.SigningKey, MaskChipKey: r.MaskChipKey}))
	copy(raw[0x50:0x90], r.ReportData[:])
	copy(raw[0x90:0xC0], r.Measurement[:])
	copy(raw[0xC0:0xE0], r.HostData[:])
	le.PutUint64(raw[0x180:], uint64(tcbVersion)) // reported TCB
	if version >= abi.ReportVersion3 {
		raw[0x188], raw[0x189], raw[0x18A] = family, model, stepping
	}
	copy(raw[0x1A0:0x1E0], r.ChipID[:])
	le.PutUint64(raw[0x1E0:], uint64(tcbVersion)) // committed TCB
	le.PutUint64(raw[0x1F0:], uint64(tcbVersion)) // launch TCB
	return s.sign(raw)
}

func (s *Signer) sign(raw []byte) ([]byte, error) {
	digest := sha512.Sum384(abi.SignedComponent(raw))
	rr, ss, err := ecdsa.Sign(rand.Reader, s.key, digest[:])
	if err != nil {
		return nil, err
	}
	if err := abi.SetSignature(rr, ss, raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// Evidence signs r and returns it with the chain, as a join sends it.
func (s *Signer) Evidence(r Report) (attest.Evidence, error) {
	raw, err := s.Sign(r)
	if err != nil {
		return attest.Evidence{}, err
	}
	return attest.Evidence{Format: attest.FormatSEVSNP, Evidence: raw, Endorsements: s.Endorsements()}, nil
}

// SignReport is the node agent's call: a report signed by the development
// VCEK in dir, with hostData and measurement, and reportData (for a join,
// attest.ReportDataFor the node's public key).
func SignReport(dir string, hostData [32]byte, measurement [48]byte, reportData [64]byte) (attest.Evidence, error) {
	s, err := Load(dir)
	if err != nil {
		return attest.Evidence{}, err
	}
	return s.Evidence(Report{HostData: hostData, Measurement: measurement, ReportData: reportData})
}

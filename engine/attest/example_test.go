package attest_test

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"

	sevtest "github.com/google/go-sev-guest/testing"

	"github.com/gavelhq/gavel/engine/attest"
	"github.com/gavelhq/gavel/engine/attest/devsnp"
)

// A join checks the hardware's word, then host data (trusted, or a
// transparent statement: package joinproof), then the governed values and
// the key binding — CCF's order.
func Example_join() {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	signer, _ := devsnp.New(devsnp.Keys{ARK: sevtest.DefaultArk(), ASK: sevtest.DefaultAsk(), VCEK: sevtest.DefaultVcek()}, created)
	nodeKey := []byte("the joining node's public key DER")
	evidence, _ := signer.Evidence(devsnp.Report{
		HostData:    [32]byte{0xb0},
		Measurement: [48]byte{0x5e},
		ReportData:  attest.ReportDataFor(nodeKey),
	})
	policy := attest.Policy{
		Roots:           []*x509.Certificate{signer.ARK}, // --dev-snp-root
		SNPMeasurements: map[string]bool{hex.EncodeToString(append([]byte{0x5e}, make([]byte, 47)...)): true},
		MinimumTCB:      map[string]attest.TCB{devsnp.CPUID: devsnp.TCBVersion},
	}
	at := created.Add(time.Hour) // the entry's time

	v, err := attest.VerifyEvidence(evidence, policy, at)
	if err != nil {
		fmt.Println("refused:", err)
		return
	}
	fmt.Printf("host data %x…\n", v.HostData[:2])
	// … the join decides on v.HostData here …
	if err := v.Check(policy, nodeKey); err != nil {
		fmt.Println("refused:", err)
		return
	}
	fmt.Println("attested: CPU", v.CPUID, "TCB", v.TCB)
	// Output:
	// host data b000…
	// attested: CPU 00a00f11 TCB {fmc 0, boot_loader 4, tee 0, snp 24, microcode 219}
}

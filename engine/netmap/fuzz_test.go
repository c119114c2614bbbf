package netmap_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/netmap"
)

func FuzzParseNodeInfo(f *testing.F) {
	n := newNode(f, "alice", "ES256")
	f.Add(n.sign(f, n.info(1)))
	e := newNode(f, "bob", "EdDSA")
	f.Add(e.sign(f, e.info(7)))
	ack, _ := netmap.SignAck(n.key, "00")
	f.Add(ack)
	lim := netmap.DefaultLimits()
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := netmap.ParseNodeInfo(raw, lim)
		if err != nil {
			e := engine.AsError(err)
			if (e.Kind != engine.KindInvalid && e.Kind != engine.KindTooLarge) ||
				(e.Code != netmap.CodeInvalidNodeInfo && e.Code != cose.CodeUnsupportedAlgorithm && e.Code != cose.CodeInvalidSignature) {
				t.Fatalf("error %v: kind %v code %q", err, e.Kind, e.Code)
			}
			return
		}
		m, err := cose.DecodeSign1(raw)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(m.Payload); p.Hash != hex.EncodeToString(sum[:]) {
			t.Fatal("hash is not SHA-256 of the payload")
		}
		for i, name := range p.Names {
			again, err := netmap.NormalizeLegalName(name)
			if err != nil || again != name {
				t.Fatalf("names[%d] %q is not a fixed point: %q %v", i, name, again, err)
			}
		}
		if len(p.Info.Addresses) == 0 || len(p.Info.Addresses) > lim.MaxAddresses || p.Info.PlatformVersion < 1 || p.Info.Serial < 0 {
			t.Fatalf("accepted %+v", p.Info)
		}
		if _, err := p.SelfVerify(); err != nil && engine.KindOf(err) != engine.KindInvalid {
			t.Fatalf("SelfVerify: %v", err)
		}
	})
}

func FuzzParseParameters(f *testing.F) {
	f.Add(baseParams().Canonical())
	f.Add([]byte(`{"minimum_platform_version":1,"notaries":[{"identity":"O=N, L=Z, C=CH","validating":true}],"max_message_size":1,"max_transaction_size":1,"event_horizon":"720h","package_ownership":{"com.a":"k"},"whitelisted_contract_implementations":{"com.a.C":[]}}`))
	f.Add([]byte(`{"minimum_platform_version":1,"minimum_platform_version":2}`))
	lim := netmap.DefaultLimits()
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := netmap.ParseParameters(b, lim)
		if err != nil {
			if e := engine.AsError(err); e.Code != netmap.CodeInvalidParameters || (e.Kind != engine.KindInvalid && e.Kind != engine.KindTooLarge) {
				t.Fatalf("error %v: kind %v code %q", err, e.Kind, e.Code)
			}
			return
		}
		if p.Epoch == 0 {
			p.Epoch = 1
		}
		if p.ModifiedTime.IsZero() {
			p.ModifiedTime = t0
		}
		if p.Validate(lim) != nil {
			return
		}
		c := p.Canonical()
		q, err := netmap.ParseParameters(c, lim)
		if err != nil {
			t.Fatalf("canonical form %s does not parse: %v", c, err)
		}
		if !bytes.Equal(q.Canonical(), c) || q.Hash() != p.Hash() {
			t.Fatalf("canonical form is not stable:\n%s\n%s", c, q.Canonical())
		}
		if !json.Valid(c) {
			t.Fatal("canonical form is not JSON")
		}
	})
}

func FuzzParseSetParameters(f *testing.F) {
	f.Add([]byte(`{"parameters":{"minimum_platform_version":1,"notaries":[],"max_message_size":1,"max_transaction_size":1},"description":"d","update_deadline":"2026-01-02T00:00:00Z"}`))
	f.Add([]byte(`{"parameters":null,"description":"","update_deadline":"x"}`))
	lim := netmap.DefaultLimits()
	f.Fuzz(func(t *testing.T, b []byte) {
		st := genesisState(t, baseParams())
		u, err := netmap.ParseSetParameters(b, lim)
		if err != nil {
			if e := engine.AsError(err); e.Code != netmap.CodeInvalidParametersUpdate && e.Code != netmap.CodeInvalidParameters {
				t.Fatalf("error %v: code %q", err, e.Code)
			}
			return
		}
		ws, pend, err := u.Apply(st, facts(2, t0), lim)
		if err != nil {
			if engine.KindOf(err) != engine.KindInvalid && engine.KindOf(err) != engine.KindTooLarge {
				t.Fatalf("apply: %v", err)
			}
			return
		}
		if pend.DeadlineMs <= t0.UnixMilli() {
			t.Fatal("a deadline not in the future was accepted")
		}
		st.Apply(ws)
		p, _, ok, err := netmap.LoadParameters(st, pend.NewParametersHash)
		if err != nil || !ok || p.Hash() != pend.NewParametersHash || p.Epoch != 2 {
			t.Fatalf("stored parameters: %v %v", ok, err)
		}
	})
}

package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gavelhq/gavel/engine/cose"
)

// resetProxy forwards HTTP requests to target; a POST /entries (when
// resetRegistration is set) is forwarded and answered by the service, but
// the client's connection is then reset instead of getting the answer.
type resetProxy struct {
	target            string
	resetRegistration atomic.Bool
	dropRegistration  atomic.Bool // reset before forwarding: the request never lands
	resets            atomic.Int32
	ln                net.Listener
}

func startResetProxy(t *testing.T, target string) *resetProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &resetProxy{target: target, ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c.(*net.TCPConn))
		}
	}()
	return p
}

func (p *resetProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *resetProxy) serve(c *net.TCPConn) {
	defer c.Close()
	rd := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(rd)
		if err != nil {
			return
		}
		if req.Method == http.MethodPost && req.URL.Path == "/entries" && p.dropRegistration.Load() {
			c.SetLinger(0)
			return
		}
		u, _ := url.Parse(p.target)
		req.URL.Scheme, req.URL.Host, req.RequestURI = u.Scheme, u.Host, ""
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			return
		}
		if req.Method == http.MethodPost && req.URL.Path == "/entries" && p.resetRegistration.Load() {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			p.resets.Add(1)
			c.SetLinger(0) // close with RST: the request landed, its answer is lost
			return
		}
		err = resp.Write(c)
		resp.Body.Close()
		if err != nil {
			return
		}
	}
}

// TestRegisterResolvesResetConnection: a registration whose answer is lost
// to a reset connection is found by its claims digest and reported as
// registered, with its txid; one that never reached the service is
// reported as not registered.
func TestRegisterResolvesResetConnection(t *testing.T) {
	svc := startService(t)
	dir := t.TempDir()
	mustRun(t, "statement", "issuer", "--out", dir)
	did := strings.TrimSpace(string(must(readInput(filepath.Join(dir, "did.txt")))))
	sign := func(name, payload string) string {
		st := mustRun(t, "statement", "sign", "--key", filepath.Join(dir, "key.pem"), "--chain", filepath.Join(dir, "chain.pem"),
			"--issuer", did, "--subject", "s", writeFile(t, dir, name+".txt", []byte(payload)))
		return writeFile(t, dir, name+".cose", []byte(st))
	}
	proxy := startResetProxy(t, svc.url)
	proxy.resetRegistration.Store(true)

	st := sign("a", "lost answer")
	code, out, errOut := run("statement", "register", "--url", proxy.url(), "--json", st)
	var reg struct{ TxID string }
	if code != exitOK || json.Unmarshal([]byte(out), &reg) != nil || reg.TxID == "" || !strings.Contains(errOut, "answer was lost") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if proxy.resets.Load() != 1 {
		t.Fatalf("%d resets", proxy.resets.Load())
	}
	// The txid is the statement's: its receipt is for that claims digest.
	rcpt := writeFile(t, dir, "a.receipt", []byte(mustRun(t, "receipt", "--url", svc.url, "--txid", reg.TxID)))
	mustRun(t, "audit", "verify-receipt", "--service-cert", svc.cert, "--statement", st, rcpt)

	// The lookup itself.
	cd, err := cose.ClaimsDigest(must(readInput(st)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(svc.url + "/entries?claims_digest=" + hex.EncodeToString(cd[:]))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), reg.TxID) {
		t.Fatalf("lookup: %d %s", resp.StatusCode, b)
	}
	for q, want := range map[string]int{
		"claims_digest=" + strings.Repeat("00", 32): http.StatusNotFound,
		"claims_digest=zz":                          http.StatusBadRequest,
		"":                                          http.StatusBadRequest,
	} {
		resp, err := http.Get(svc.url + "/entries?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /entries?%s: %d, want %d", q, resp.StatusCode, want)
		}
	}

	// The connection is reset before the request reaches the service.
	proxy.dropRegistration.Store(true)
	if code, _, errOut := run("statement", "register", "--url", proxy.url(), sign("c", "dropped")); code != exitFailed || !strings.Contains(errOut, "not registered") {
		t.Fatalf("dropped registration: exit %d, %q", code, errOut)
	}

	// Nothing listens: the request never arrived, and the answer says so.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	if code, _, errOut := run("statement", "register", "--url", deadURL, "--wait", "1s", sign("b", "never sent")); code != exitFailed || !strings.Contains(errOut, "unknown") {
		t.Fatalf("unreachable service: exit %d, %q", code, errOut)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestSignatureEntryReceipt: on a quiet service, the last signature entry,
// which /node/network names as signed, has its receipt at once (no later
// signature will come), and it verifies as that signature entry's.
func TestSignatureEntryReceipt(t *testing.T) {
	svc := startService(t)
	dir := t.TempDir()
	mustRun(t, "statement", "issuer", "--out", dir)
	did := strings.TrimSpace(string(must(readInput(filepath.Join(dir, "did.txt")))))
	st := writeFile(t, dir, "st.cose", []byte(mustRun(t, "statement", "sign", "--key", filepath.Join(dir, "key.pem"),
		"--chain", filepath.Join(dir, "chain.pem"), "--issuer", did, "--subject", "s", writeFile(t, dir, "p.txt", []byte("p")))))
	mustRun(t, "statement", "register", "--url", svc.url, st)
	meta := svc.settled(t)

	resp, err := http.Get(svc.url + "/node/network")
	if err != nil {
		t.Fatal(err)
	}
	var network struct {
		LastSigned string `json:"last_signed_txid"`
	}
	err = json.NewDecoder(resp.Body).Decode(&network)
	resp.Body.Close()
	if err != nil || !strings.HasSuffix(network.LastSigned, "."+strconv.FormatUint(meta.LastSignature, 10)) {
		t.Fatalf("/node/network last_signed_txid %q (%v), store %+v", network.LastSigned, err, meta)
	}
	// No waiting: a pending answer would fail at once.
	rcpt := writeFile(t, dir, "sig.receipt", []byte(mustRun(t, "receipt", "--url", svc.url, "--txid", network.LastSigned, "--wait", "0s")))
	var v struct {
		Verified  bool   `json:"verified"`
		Kind      string `json:"kind"`
		EntryTxID string `json:"entry_txid"`
		SigTxID   string `json:"signature_txid"`
		Root      string `json:"root"`
	}
	out := mustRun(t, "audit", "verify-receipt", "--service-cert", svc.cert, rcpt)
	root, _ := svc.r.Store().RootAt(meta.LastSignature)
	if err := json.Unmarshal([]byte(out), &v); err != nil || !v.Verified || v.Kind != "signature" ||
		v.EntryTxID != network.LastSigned || v.SigTxID != network.LastSigned || v.Root != hex.EncodeToString(root[:]) {
		t.Fatalf("verify-receipt: %s", out)
	}
	// It proves no statement.
	if code, _, errOut := run("audit", "verify-receipt", "--service-cert", svc.cert, "--statement", st, rcpt); code != exitFailed || !strings.Contains(errOut, "signature entry") {
		t.Fatalf("a signature receipt for a statement: exit %d, %q", code, errOut)
	}
	// And against another service it does not verify.
	if code, _, _ := run("audit", "verify-receipt", "--service-cert", writeServiceCert(t, dir), rcpt); code != exitFailed {
		t.Fatalf("another service's certificate: exit %d", code)
	}
}

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/cose"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/receipt"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/engine/sequencer"
	"github.com/gavelhq/gavel/handlers"
	"github.com/gavelhq/gavel/nodeagent"
	"github.com/gavelhq/gavel/scripts/policies"
)

func init() {
	register("demo code-upgrade", "run CCF's code upgrade procedure on a fresh service, narrated", runDemoCodeUpgrade)
}

// demoMeasurement is what every demo node's virtual evidence declares.
const demoMeasurement = "de30"

type demo struct {
	out    io.Writer
	ctx    context.Context
	c      *client.Client
	member *govreq.Member
	dir    string
	step   int
	rows   [][2]string
}

func (d *demo) say(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.out, "%2d. %s\n", d.step, fmt.Sprintf(format, args...))
}

func (d *demo) note(what, outcome string) { d.rows = append(d.rows, [2]string{what, outcome}) }

func (d *demo) govern(actions string) error {
	p, _, err := d.c.Propose(d.ctx, d.member, []byte(`{"actions":[`+actions+`]}`))
	if err == nil && p.State == "Open" {
		p, _, err = d.c.Vote(d.ctx, d.member, p.ProposalID, client.AcceptBallot)
	}
	if err != nil {
		return err
	}
	if p.State != "Accepted" {
		return fmt.Errorf("proposal %s is %s", p.ProposalID, p.State)
	}
	return nil
}

func demoHostData(code string) string {
	sum := sha256.Sum256([]byte("gavel demo code " + code))
	return hex.EncodeToString(sum[:])
}

// node makes a node running code and joins it; statement is the path of
// its transparent statement, or "".
func (d *demo) node(name, code, statement string) (string, client.JoinResult, error) {
	keys := filepath.Join(d.dir, name)
	id, err := nodeagent.Keygen(keys)
	if err != nil {
		return "", client.JoinResult{}, err
	}
	cfg := nodeagent.Config{Role: "participant", Address: name + ".demo:8443", CodeVersion: code, StatementPath: statement,
		Attestation: nodeagent.Attestation{Format: "virtual", HostData: demoHostData(code), Measurement: demoMeasurement}}
	key, err := nodeagent.LoadKey(keys)
	if err != nil {
		return id, client.JoinResult{}, err
	}
	signed, err := nodeagent.Request(cfg, "", key)
	if err != nil {
		return id, client.JoinResult{}, err
	}
	res, err := d.c.Join(d.ctx, signed)
	return id, res, err
}

func runDemoCodeUpgrade(args []string, out, errOut io.Writer) int {
	fs := newFlags("demo code-upgrade", errOut)
	keep := fs.String("data", "", "data folder to keep (default: a temporary one, removed after)")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(errOut, fs, "no arguments are taken")
	}
	dir := *keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "gavel-demo-")
		if err != nil {
			return failf(errOut, "%v", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	if err := demoCodeUpgrade(out, dir); err != nil {
		return failf(errOut, "demo: %v", err)
	}
	return exitOK
}

func demoCodeUpgrade(out io.Writer, dir string) error {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	seq := sequencer.DefaultConfig()
	seq.SignInterval = 10 * time.Millisecond
	data := filepath.Join(dir, "service")
	r, err := replica.Open(ctx, replica.Config{DataDir: data, NATSListen: "127.0.0.1:0", Sequencer: seq, Logger: logger})
	if err != nil {
		return err
	}
	defer r.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handlers.NewHTTP(r, handlers.DefaultLimits(), logger), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	certPEM, err := os.ReadFile(filepath.Join(data, replica.Member0CertFile))
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(filepath.Join(data, replica.Member0KeyFile))
	if err != nil {
		return err
	}
	member, err := govreq.LoadMember(certPEM, keyPEM)
	if err != nil {
		return err
	}
	d := &demo{out: out, ctx: ctx, c: client.New("http://" + ln.Addr().String()), member: member, dir: dir}
	fmt.Fprintf(out, "CCF's code upgrade procedure on a fresh gavel service at http://%s (virtual attestation)\n\n", ln.Addr())

	d.say("Members trust code version A: its host data and measurement.")
	if err := d.govern(`{"name":"add_virtual_measurement","args":{"measurement":"` + demoMeasurement + `"}},{"name":"add_virtual_host_data","args":{"host_data":"` + demoHostData("A") + `"}}`); err != nil {
		return err
	}
	ids := map[string]string{}
	join := func(name, code, statement, want string) error {
		id, res, err := d.node(name, code, statement)
		ids[name] = id
		if want == "refused" {
			if err == nil {
				return fmt.Errorf("%s joined (%s): it should have been refused", name, res.NodeStatus)
			}
			fmt.Fprintf(out, "    %s (code %s) refused: %s\n", name, code, engine.AsError(err).Message)
			d.note(name+" (code "+code+") joins", "refused: "+engine.AsError(err).Code)
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(out, "    %s (code %s) is %s as %s…\n", name, code, res.NodeStatus, id[:16])
		return nil
	}
	trust := func(name string) error {
		return d.govern(`{"name":"transition_node_to_trusted","args":{"node_id":"` + ids[name] + `"}}`)
	}
	d.say("Three nodes on code A join; members trust them.")
	for _, n := range []string{"a1", "a2", "a3"} {
		if err := join(n, "A", "", "Pending"); err != nil {
			return err
		}
		if err := trust(n); err != nil {
			return err
		}
	}
	d.note("3 nodes on A", "Trusted")
	d.say("Members register code version B (add_virtual_host_data); three nodes on B join and are trusted: six nodes.")
	if err := d.govern(`{"name":"add_virtual_host_data","args":{"host_data":"` + demoHostData("B") + `"}}`); err != nil {
		return err
	}
	for _, n := range []string{"b1", "b2", "b3"} {
		if err := join(n, "B", "", "Pending"); err != nil {
			return err
		}
		if err := trust(n); err != nil {
			return err
		}
	}
	trusted, err := d.c.Nodes(ctx, "Trusted", "")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "    %d trusted nodes (the service's own replica included)\n", len(trusted))
	d.note("3 nodes on B", "Trusted")
	d.say("The A nodes are retired one by one; once a signature covers each retirement it is removable, and is deleted.")
	for _, n := range []string{"a1", "a2", "a3"} {
		if err := d.govern(`{"name":"remove_node","args":{"node_id":"` + ids[n] + `"}}`); err != nil {
			return err
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			rm, err := d.c.RemovableNodes(ctx)
			if err != nil {
				return err
			}
			if len(rm) == 1 && rm[0].NodeID == ids[n] {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s never became removable", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := d.c.DeleteNode(ctx, ids[n]); err != nil {
			return err
		}
		fmt.Fprintf(out, "    %s retired, removable, deleted\n", n)
	}
	d.note("3 nodes on A", "retired and deleted")
	d.say("Members stop trusting code A (remove_virtual_host_data); a fourth node on A is refused.")
	if err := d.govern(`{"name":"remove_virtual_host_data","args":{"host_data":"` + demoHostData("A") + `"}}`); err != nil {
		return err
	}
	if err := join("a4", "A", "", "refused"); err != nil {
		return err
	}

	d.say("The policy route: code C is never added. Its publisher signs a statement of C's host data (svn 3), registers it on this ledger, and the node presents it with its receipt; members set the SVN policy (svn ≥ 2).")
	if err := d.govern(`{"name":"set_node_join_policy","args":{"policy":` + jsonString(policies.MinSVN) + `}}`); err != nil {
		return err
	}
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		return err
	}
	statement := func(name, code string, svn int, tamper bool) (string, error) {
		hd, _ := hex.DecodeString(demoHostData(code))
		st, err := iss.Sign("gavel/code", "application/octet-stream", hd, time.Now(), cose.WithClaim("svn", svn))
		if err != nil {
			return "", err
		}
		tx, err := d.c.RegisterAndWait(ctx, st, 30*time.Second)
		if err != nil {
			return "", err
		}
		ts, err := d.c.TransparentStatement(ctx, tx, 30*time.Second)
		if err != nil {
			return "", err
		}
		if tamper {
			if ts, err = tamperProof(ts); err != nil {
				return "", err
			}
		}
		path := filepath.Join(dir, name+".ts.cose")
		return path, os.WriteFile(path, ts, 0o644)
	}
	p, err := statement("c1", "C", 3, false)
	if err != nil {
		return err
	}
	if err := join("c1", "C", p, "Pending"); err != nil {
		return err
	}
	if err := trust("c1"); err != nil {
		return err
	}
	d.note("node on C, statement svn 3", "Pending by the policy, then Trusted")
	d.say("A statement whose svn is below the policy's threshold is refused with the policy's reason; a tampered receipt is refused by validation.")
	if p, err = statement("c2", "C", 1, false); err != nil {
		return err
	}
	if err := join("c2", "C", p, "refused"); err != nil {
		return err
	}
	if p, err = statement("c3", "C", 3, true); err != nil {
		return err
	}
	if err := join("c3", "C", p, "refused"); err != nil {
		return err
	}

	fmt.Fprintln(out, "\nSummary")
	w := 0
	for _, row := range d.rows {
		w = max(w, len(row[0]))
	}
	for _, row := range d.rows {
		fmt.Fprintf(out, "  %-*s  %s\n", w, row[0], row[1])
	}
	all, err := d.c.Nodes(ctx, "", "")
	if err != nil {
		return err
	}
	count := map[string]int{}
	for _, v := range all {
		count[v.Status]++
	}
	fmt.Fprintf(out, "  nodes now: %d Trusted, %d Pending, %d Retired (the service's replica is one of the Trusted)\n",
		count["Trusted"], count["Pending"], count["Retired"])
	return nil
}

// tamperProof flips a byte of the first receipt's inclusion proof.
func tamperProof(ts []byte) ([]byte, error) {
	rs, err := receipt.Receipts(ts)
	if err != nil || len(rs) == 0 {
		return nil, fmt.Errorf("no receipt to tamper with: %v", err)
	}
	rc := append([]byte{}, rs[0]...)
	rc[len(rc)-70] ^= 1 // in the proof, before the signature
	m, err := cose.DecodeSign1(ts)
	if err != nil {
		return nil, err
	}
	m.Unprotected = cose.Header{}
	bare, err := m.Encode()
	if err != nil {
		return nil, err
	}
	return receipt.Embed(bare, rc)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

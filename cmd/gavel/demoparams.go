package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine/govreq"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/receipt"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/nodeagent/mapagent"
)

func init() {
	register("demo parameters", "narrate one network-parameters update end to end with three node agents as child processes", runDemoParameters)
}

func runDemoParameters(args []string, out, errOut io.Writer) int {
	fs := newFlags("demo parameters", errOut)
	keep := fs.String("dir", "", "folder for the network (default: a temporary one, removed after)")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(errOut, fs, "no arguments are taken")
	}
	if err := demoParameters(*keep, out); err != nil {
		fmt.Fprintf(errOut, "gavel demo parameters: %v\n", err)
		return exitFailed
	}
	return exitOK
}

type child struct {
	name string
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan int
}

func startChild(name, bin string, args ...string) (*child, error) {
	c := &child{name: name, cmd: exec.Command(bin, args...), logs: &bytes.Buffer{}, done: make(chan int, 1)}
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { c.cmd.Wait(); c.done <- c.cmd.ProcessState.ExitCode() }()
	return c, nil
}

func waitFor(what string, limit time.Duration, cond func() bool) error {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return nil
		}
	}
	return fmt.Errorf("timed out waiting for %s", what)
}

func demoParameters(dir string, out io.Writer) error {
	ctx := context.Background()
	if dir == "" {
		tmp, err := os.MkdirTemp("", "gavel-demo-parameters-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	say := func(format string, a ...any) { fmt.Fprintf(out, "== "+format+"\n", a...) }
	legal := []string{"O=Alice,L=London,C=GB", "O=Bob,L=Paris,C=FR", "O=Carol,L=Rome,C=IT"}
	res, err := bootstrap(dir, 2, legal, 0, 1, 4, time.Now(), nil)
	if err != nil {
		return err
	}
	say("gavel bootstrap: 2 members, nodes Alice, Bob and Carol; parameters epoch %d (%s)", res.Epoch, res.Hash[:12])
	svc := filepath.Join(dir, "service")
	srv, err := startChild("serve", bin, "serve", "--data", svc, "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--sign-interval", "20ms", "--map-max-age", "1s")
	if err != nil {
		return err
	}
	defer func() { srv.cmd.Process.Signal(os.Interrupt); <-srv.done }()
	var ep endpoints
	if err := waitFor("gavel serve", time.Minute, func() bool {
		b, err := os.ReadFile(filepath.Join(svc, "endpoints.json"))
		return err == nil && json.Unmarshal(b, &ep) == nil && ep.HTTP != ""
	}); err != nil {
		return fmt.Errorf("%w:\n%s", err, srv.logs)
	}
	say("gavel serve --data %s: %s", svc, ep.HTTP)
	nodeDir := func(i int) string { return filepath.Join(dir, "nodes", fmt.Sprintf("node%d", i)) }
	var agents []*child
	for i, extra := range [][]string{nil, {"--no-auto-accept"}, {"--no-auto-accept"}} {
		a, err := startChild(legal[i], bin, append([]string{"node", "run", "--base", nodeDir(i), "--url", ep.HTTP, "--max-poll", "50ms"}, extra...)...)
		if err != nil {
			return err
		}
		defer func() { a.cmd.Process.Kill() }()
		agents = append(agents, a)
	}
	say("three node agents (gavel node run): Alice auto-accepts, Bob and Carol ask their operators")
	c := client.New(ep.HTTP)
	if err := waitFor("three NodeInfos in the map", time.Minute, func() bool {
		infos, err := c.NodeInfos(ctx)
		return err == nil && len(infos) == 3
	}); err != nil {
		return err
	}
	say("the signed map lists 3 NodeInfos")

	var members []*govreq.Member
	for i := range 2 {
		certPEM, _ := os.ReadFile(filepath.Join(dir, "members", fmt.Sprintf("member%d_cert.pem", i)))
		keyPEM, _ := os.ReadFile(filepath.Join(dir, "members", fmt.Sprintf("member%d_privk.pem", i)))
		m, err := govreq.LoadMember(certPEM, keyPEM)
		if err != nil {
			return err
		}
		members = append(members, m)
	}
	deadline := time.Now().UTC().Add(4 * time.Second).Format(time.RFC3339)
	body := `{"actions":[{"name":"set_network_parameters","args":{"description":"whitelist com.example.Cash","update_deadline":"` + deadline + `",` +
		`"parameters":{"minimum_platform_version":1,"notaries":[],"max_message_size":10485760,"max_transaction_size":10485760,` +
		`"whitelisted_contract_implementations":{"com.example.Cash":["` + strings.Repeat("c4", 32) + `"]}}}}]}`
	p, _, err := c.Propose(ctx, members[0], []byte(body))
	if err != nil {
		return err
	}
	say("member0 proposes set_network_parameters (deadline %s): %s", deadline, p.State)
	for i, m := range members {
		if p, _, err = c.Vote(ctx, m, p.ProposalID, "export function vote() { return true; }"); err != nil {
			return err
		}
		say("member%d votes yes: %s", i, p.State)
	}
	nc, err := nats.Connect(ep.NATS, natsClientOption(svc))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	feeds, err := js.Stream(ctx, natslog.FeedsStream)
	if err != nil {
		return err
	}
	var feed replica.ParamsFeed
	if err := waitFor("the update on gavel.feed.params", time.Minute, func() bool {
		m, err := feeds.GetLastMsgForSubject(ctx, replica.SubjectFeedParams)
		return err == nil && json.Unmarshal(m.Data, &feed) == nil && feed.Update != nil
	}); err != nil {
		return err
	}
	hash := feed.Update.Hash
	say("gavel.feed.params advertises %s… (%q)", hash[:12], feed.Update.Description)
	if err := waitFor("the agents recording it", time.Minute, func() bool {
		for i := range agents {
			if us, _ := mapagent.Updates(nodeDir(i)); len(us) == 0 {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	us, _ := mapagent.Updates(nodeDir(0))
	say("gavel node updates (Alice): auto_accepted=%v", us[0].AutoAccepted)
	if err := mapagent.AcceptLocal(ctx, nodeDir(1), hash); err != nil {
		return err
	}
	say("gavel node accept (Bob) %s…: accepted", hash[:12])
	acc, err := c.Acceptances(ctx, "")
	if err != nil {
		return err
	}
	say("acceptances: %d accepted, %d not (Carol)", len(acc.Accepted), len(acc.Pending))
	for _, a := range agents {
		select {
		case code := <-a.done:
			last := strings.TrimSpace(a.logs.String())
			if i := strings.LastIndex(last, "\n"); i >= 0 {
				last = last[i+1:]
			}
			say("flag day: %s's agent exits %d: %s", a.name, code, last)
		case <-time.After(time.Minute):
			return fmt.Errorf("%s's agent did not exit at the flag day", a.name)
		}
	}
	infos, err := c.NodeInfos(ctx)
	if err != nil {
		return err
	}
	say("the map now lists %d NodeInfos: Carol left", len(infos))
	m, err := feeds.GetLastMsgForSubject(ctx, replica.SubjectFeedParams)
	if err != nil || json.Unmarshal(m.Data, &feed) != nil {
		return fmt.Errorf("params feed after the flag day: %v", err)
	}
	rcpt, err := c.Receipt(ctx, feed.TxID, time.Minute)
	if err != nil {
		return err
	}
	certPEM, _ := os.ReadFile(filepath.Join(svc, replica.ServiceCertFile))
	key, err := receiptKey(certPEM)
	if err != nil {
		return err
	}
	if _, err := receipt.Verify(rcpt, key); err != nil {
		return fmt.Errorf("the flag-day receipt: %w", err)
	}
	say("the flag-day entry %s has a receipt that verifies against %s", feed.TxID, replica.ServiceCertFile)
	return nil
}

// natsClientOption is the node user's credentials of the service's
// embedded NATS (its inbox prefix included).
func natsClientOption(svc string) nats.Option {
	opt, err := natslog.ConnectOptions(filepath.Join(svc, "nats", natslog.UserNode.SeedFile()))
	if err != nil {
		return func(*nats.Options) error { return err }
	}
	return opt
}

func receiptKey(certPEM []byte) (any, error) {
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		return nil, fmt.Errorf("%s is not PEM", replica.ServiceCertFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, err
	}
	return cert.PublicKey, nil
}

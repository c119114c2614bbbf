package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine/govreq"
)

func init() {
	register("member keygen", "make a member key and certificate (NAME_cert.pem, NAME_privk.pem)", runMemberKeygen)
	register("member propose", "sign and submit a proposal", runMemberPropose)
	register("member vote", "sign and submit a ballot on a proposal", runMemberVote)
	register("member withdraw", "withdraw a proposal you made", runMemberWithdraw)
	register("member proposals", "list proposals", runMemberProposals)
	register("member ack", "activate an Accepted member: fetch the state digest and sign it back", runMemberAck)
	register("member sign", "sign a governance request (COSE to stdout) for other clients", runMemberSign)
}

func runMemberKeygen(args []string, out, errOut io.Writer) int {
	fs := newFlags("member keygen", errOut)
	dir := fs.String("out", ".", "folder for NAME_cert.pem and NAME_privk.pem")
	name := fs.String("name", "", "member name (the certificate's CN and the file prefix)")
	alg := fs.String("alg", "ES384", "ES256, ES384 or EdDSA")
	asJSON := fs.Bool("json", false, "print the member id and the files' paths as JSON")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if *name == "" || len(pos) != 0 || strings.ContainsAny(*name, `/\`) {
		return usageError(errOut, fs, "--name (a plain file name) is required and no arguments are taken")
	}
	certPEM, keyPEM, err := govreq.Keygen(*alg, *name)
	if err != nil {
		return usageError(errOut, fs, "%v", err)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return failf(errOut, "%v", err)
	}
	certPath, keyPath := filepath.Join(*dir, *name+"_cert.pem"), filepath.Join(*dir, *name+"_privk.pem")
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Stat(p); err == nil {
			return failf(errOut, "%s exists; not overwriting a key", p)
		}
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return failf(errOut, "%v", err)
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return failf(errOut, "%v", err)
	}
	cert, _ := govreq.ParseCertificatePEM(certPEM)
	if *asJSON {
		return printJSON(out, map[string]string{"member_id": govreq.MemberID(cert), "cert": certPath, "key": keyPath})
	}
	fmt.Fprintf(out, "%s\n", govreq.MemberID(cert))
	return exitOK
}

// memberFlags are the flags every signing member command takes.
type memberFlags struct {
	url, cert, key string
	asJSON         bool
}

func (m *memberFlags) register(fs interface {
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}, withURL bool) {
	if withURL {
		fs.StringVar(&m.url, "url", "http://127.0.0.1:8080", "the service's HTTP address")
		fs.BoolVar(&m.asJSON, "json", false, "print JSON instead of a table")
	}
	fs.StringVar(&m.cert, "cert", "", "the member's certificate (PEM)")
	fs.StringVar(&m.key, "key", "", "the member's private key (PEM)")
}

func (m *memberFlags) load() (*govreq.Member, error) {
	if m.cert == "" || m.key == "" {
		return nil, fmt.Errorf("--cert and --key are required")
	}
	certPEM, err := os.ReadFile(m.cert)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(m.key)
	if err != nil {
		return nil, err
	}
	return govreq.LoadMember(certPEM, keyPEM)
}

func runMemberPropose(args []string, out, errOut io.Writer) int {
	fs := newFlags("member propose", errOut)
	var m memberFlags
	m.register(fs, true)
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(errOut, fs, "one PROPOSAL.json file is required")
	}
	member, err := m.load()
	if err != nil {
		return usageError(errOut, fs, "%v", err)
	}
	body, err := readInput(pos[0])
	if err != nil {
		return failf(errOut, "%v", err)
	}
	if !json.Valid(body) {
		return failf(errOut, "%s is not JSON", pos[0])
	}
	p, _, err := m.client().Propose(context.Background(), member, body)
	return m.answer(out, errOut, p, err)
}

func runMemberVote(args []string, out, errOut io.Writer) int {
	fs := newFlags("member vote", errOut)
	var m memberFlags
	m.register(fs, true)
	proposal := fs.String("proposal", "", "the proposal id")
	ballotFile := fs.String("ballot", "", "a ballot script (export function vote(proposal, proposerId) {…}); default: accept")
	reject := fs.Bool("reject", false, "vote against")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if *proposal == "" || len(pos) != 0 || (*ballotFile != "" && *reject) {
		return usageError(errOut, fs, "--proposal is required; --ballot and --reject exclude each other")
	}
	member, err := m.load()
	if err != nil {
		return usageError(errOut, fs, "%v", err)
	}
	src := client.AcceptBallot
	if *reject {
		src = client.RejectBallot
	}
	if *ballotFile != "" {
		b, err := readInput(*ballotFile)
		if err != nil {
			return failf(errOut, "%v", err)
		}
		src = string(b)
	}
	p, _, err := m.client().Vote(context.Background(), member, *proposal, src)
	return m.answer(out, errOut, p, err)
}

func runMemberWithdraw(args []string, out, errOut io.Writer) int {
	fs := newFlags("member withdraw", errOut)
	var m memberFlags
	m.register(fs, true)
	proposal := fs.String("proposal", "", "the proposal id")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if *proposal == "" || len(pos) != 0 {
		return usageError(errOut, fs, "--proposal is required")
	}
	member, err := m.load()
	if err != nil {
		return usageError(errOut, fs, "%v", err)
	}
	p, _, err := m.client().Withdraw(context.Background(), member, *proposal)
	if err == nil && p == nil {
		fmt.Fprintf(errOut, "no proposal %s: nothing to withdraw\n", *proposal)
		return exitOK
	}
	return m.answer(out, errOut, p, err)
}

func runMemberAck(args []string, out, errOut io.Writer) int {
	fs := newFlags("member ack", errOut)
	var m memberFlags
	m.register(fs, true)
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(errOut, fs, "no arguments are taken")
	}
	member, err := m.load()
	if err != nil {
		return usageError(errOut, fs, "%v", err)
	}
	ctx := context.Background()
	c := m.client()
	d, body, err := c.UpdateStateDigest(ctx, member)
	if err != nil {
		return failf(errOut, "refused: %v", err)
	}
	if _, err := c.AckStateDigest(ctx, member, body); err != nil {
		return failf(errOut, "refused: %v", err)
	}
	me, err := c.Member(ctx, member.ID)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	if m.asJSON {
		b, _ := json.Marshal(me)
		fmt.Fprintf(out, "%s\n", b)
		return exitOK
	}
	fmt.Fprintf(out, "member %s is %s (acknowledged state digest %s)\n", me.MemberID, me.Status, d.StateDigest)
	return exitOK
}

func runMemberSign(args []string, out, errOut io.Writer) int {
	fs := newFlags("member sign", errOut)
	var m memberFlags
	m.register(fs, false)
	typ := fs.String("type", "", "proposal, ballot, withdrawal, state_digest or ack")
	proposal := fs.String("proposal-id", "", "the proposal id (ballot, withdrawal)")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	t := govreq.MsgType(*typ)
	switch t {
	case govreq.MsgProposal, govreq.MsgBallot, govreq.MsgWithdrawal, govreq.MsgStateDigest, govreq.MsgAck:
	default:
		return usageError(errOut, fs, "--type must be proposal, ballot, withdrawal, state_digest or ack")
	}
	// A FILE is the payload: required for a proposal, a ballot and an ack,
	// refused for a withdrawal and a state_digest request (both empty).
	needsFile := t == govreq.MsgProposal || t == govreq.MsgBallot || t == govreq.MsgAck
	if t.NeedsProposalID() == (*proposal == "") || len(pos) > 1 || needsFile != (len(pos) == 1) {
		return usageError(errOut, fs, "a proposal takes a FILE; a ballot a FILE and --proposal-id; a withdrawal --proposal-id; a state_digest nothing; an ack a FILE (the :update answer)")
	}
	member, err := m.load()
	if err != nil {
		return usageError(errOut, fs, "%v", err)
	}
	var payload []byte
	if len(pos) == 1 {
		if payload, err = readInput(pos[0]); err != nil {
			return failf(errOut, "%v", err)
		}
	}
	env, err := member.Sign(t, *proposal, time.Now(), payload)
	if err != nil {
		return failf(errOut, "sign: %v", err)
	}
	out.Write(env)
	return exitOK
}

func runMemberProposals(args []string, out, errOut io.Writer) int {
	fs := newFlags("member proposals", errOut)
	url := fs.String("url", "http://127.0.0.1:8080", "the service's HTTP address")
	state := fs.String("state", "", "only proposals in this state (Open, Accepted, …)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(errOut, fs, "no arguments are taken")
	}
	ps, err := client.New(*url, client.WithHTTPClient(httpClient)).Proposals(context.Background(), *state)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	if ps == nil {
		ps = []*client.Proposal{}
	}
	if *asJSON {
		b, _ := json.Marshal(map[string]any{"value": ps})
		fmt.Fprintf(out, "%s\n", b)
		return exitOK
	}
	printProposals(out, ps...)
	return exitOK
}

func printProposals(out io.Writer, ps ...*client.Proposal) {
	tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "PROPOSAL\tPROPOSER\tSTATE\tBALLOTS\tFOR\tAGAINST\tNOTE")
	for _, p := range ps {
		yes, no := 0, 0
		for _, v := range p.FinalVotes {
			if v {
				yes++
			} else {
				no++
			}
		}
		note := ""
		if p.Failure != nil {
			note = p.Failure.Reason
		} else if len(p.VoteFailures) > 0 {
			ids := make([]string, 0, len(p.VoteFailures))
			for id := range p.VoteFailures {
				ids = append(ids, short(id))
			}
			sort.Strings(ids)
			note = "ballot failed: " + strings.Join(ids, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", p.ProposalID, short(p.ProposerID), p.State, p.BallotCount, yes, no, note)
	}
	tw.Flush()
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}

func (m *memberFlags) client() *client.Client {
	return client.New(m.url, client.WithHTTPClient(httpClient))
}

// answer prints the proposal a governance write answered with.
func (m *memberFlags) answer(out, errOut io.Writer, p *client.Proposal, err error) int {
	if err != nil {
		return failf(errOut, "refused: %v", err)
	}
	if m.asJSON {
		b, _ := json.Marshal(p)
		fmt.Fprintf(out, "%s\n", b)
		return exitOK
	}
	printProposals(out, p)
	return exitOK
}

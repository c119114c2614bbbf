package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/gavelhq/gavel/client"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/nodeagent"
)

func init() {
	register("node keygen", "make a node key and certificate (node_privk.pem, node_cert.pem)", runNodeKeygen)
	register("node join", "join a service as a node, with the evidence node.json describes", runNodeJoin)
	register("node status", "show a node (or every node) of a service", runNodeStatus)
	register("node delete", "delete a retired node whose retirement is committed", runNodeDelete)
	register("nodes", "list a service's nodes, or the removable ones", runNodes)
	register("node stepdown", "hand the primary's lease to a named successor (run with the primary's data folder)", runNodeStepdown)
}

// runNodeStepdown signs a stepdown request with the primary's node key
// (DATA/node_privk.pem) and posts it to the primary.
func runNodeStepdown(args []string, out, errOut io.Writer) int {
	fs := newFlags("node stepdown", errOut)
	url := fs.String("url", "http://127.0.0.1:8080", "the primary's HTTP address")
	data := fs.String("data", "gavel-data", "the primary's data folder (its node key)")
	successor := fs.String("successor", "", "the node id of the Trusted service node to take over")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if *successor == "" || len(pos) != 0 {
		return usageError(errOut, fs, "--successor is required")
	}
	node, err := replica.LoadNodeIdentity(*data)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	signed, err := replica.SignStepdown(node.Key, *successor, time.Now())
	if err != nil {
		return failf(errOut, "%v", err)
	}
	if err := client.New(*url).StepDown(context.Background(), signed); err != nil {
		return failf(errOut, "%v", err)
	}
	fmt.Fprintf(out, "primary %s handed over to %s\n", node.ID, *successor)
	return exitOK
}

func runNodeKeygen(args []string, out, errOut io.Writer) int {
	fs := newFlags("node keygen", errOut)
	dir := fs.String("out", ".", "folder for node_privk.pem and node_cert.pem")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(errOut, fs, "no arguments are taken")
	}
	for _, name := range []string{nodeagent.KeyFile, nodeagent.CertFile} {
		if _, err := os.Stat(filepath.Join(*dir, name)); err == nil {
			return failf(errOut, "%s exists; not overwriting a key", filepath.Join(*dir, name))
		}
	}
	id, err := nodeagent.Keygen(*dir)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	fmt.Fprintln(out, id)
	return exitOK
}

func runNodeJoin(args []string, out, errOut io.Writer) int {
	fs := newFlags("node join", errOut)
	url := fs.String("url", "http://127.0.0.1:8080", "the service's HTTP address")
	keyDir := fs.String("key-dir", "", "folder of node_privk.pem (gavel node keygen)")
	config := fs.String("config", "", "the node's join config (node.json)")
	wait := fs.Bool("wait", false, "poll until the node is Trusted")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long --wait waits")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if *keyDir == "" || *config == "" || len(pos) != 0 {
		return usageError(errOut, fs, "--key-dir and --config are required")
	}
	key, err := nodeagent.LoadKey(*keyDir)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	cfg, base, err := nodeagent.LoadConfig(*config)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	signed, err := nodeagent.Request(cfg, base, key)
	if err != nil {
		return failf(errOut, "%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res, err := nodeagent.Join(ctx, client.New(*url), signed, *wait, time.Second)
	if err != nil {
		return failf(errOut, "join refused: %v", err)
	}
	// The CLI says status, as gavel nodes does; the HTTP answer keeps CCF's node_status.
	return printJSON(out, struct {
		NodeID          string `json:"node_id"`
		Status          string `json:"status"`
		NodeCertificate string `json:"node_certificate,omitempty"`
	}{res.NodeID, res.NodeStatus, res.NodeCertificate})
}

func runNodeStatus(args []string, out, errOut io.Writer) int {
	fs := newFlags("node status", errOut)
	url := fs.String("url", "http://127.0.0.1:8080", "the service's HTTP address")
	id := fs.String("id", "", "a node id (none: every node)")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(errOut, fs, "no arguments are taken")
	}
	c := client.New(*url)
	ctx := context.Background()
	if *id != "" {
		v, err := c.Node(ctx, *id)
		if err != nil {
			return failf(errOut, "%v", err)
		}
		return printJSON(out, v)
	}
	list, err := c.Nodes(ctx, "", "")
	if err != nil {
		return failf(errOut, "%v", err)
	}
	return printJSON(out, map[string]any{"nodes": list})
}

func runNodes(args []string, out, errOut io.Writer) int {
	fs := newFlags("nodes", errOut)
	url := fs.String("url", "http://127.0.0.1:8080", "the service's HTTP address")
	removable := fs.Bool("removable", false, "only the nodes DELETE /node/network/nodes/{id} would remove")
	status := fs.String("status", "", "only nodes of this status (Pending, Trusted, Retired)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(errOut, fs, "no arguments are taken")
	}
	c := client.New(*url)
	ctx := context.Background()
	var list []client.NodeView
	var err error
	if *removable {
		list, err = c.RemovableNodes(ctx)
	} else {
		list, err = c.Nodes(ctx, *status, "")
	}
	if err != nil {
		return failf(errOut, "%v", err)
	}
	if *asJSON {
		return printJSON(out, map[string]any{"nodes": list})
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATUS\tROLE\tADDRESS\tCODE\tPRIMARY\tRETIRED_COMMITTED")
	for _, v := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%v\n", v.NodeID[:16], v.Status, v.Role, v.Address, v.CodeVersion, v.Primary, v.RetiredCommitted)
	}
	tw.Flush()
	return exitOK
}

func runNodeDelete(args []string, out, errOut io.Writer) int {
	fs := newFlags("node delete", errOut)
	url := fs.String("url", "http://127.0.0.1:8080", "the service's HTTP address")
	id := fs.String("id", "", "the node id")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if *id == "" || len(pos) != 0 {
		return usageError(errOut, fs, "--id is required")
	}
	if err := client.New(*url).DeleteNode(context.Background(), *id); err != nil {
		return failf(errOut, "%v", err)
	}
	return exitOK
}

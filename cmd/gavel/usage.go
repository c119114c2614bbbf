package main

import (
	"flag"
	"fmt"
)

// synopsis is a command's usage line after "gavel NAME" and an example of
// it; newFlags prints them as the command's -h unless the command writes
// its own. Every command has one (TestEveryHelpNamesArgumentsAndExample).
type synopsis struct{ args, example string }

var synopses = map[string]synopsis{
	"serve": {"[--data DIR] [--http ADDR] [--nats-listen ADDR] [flags]",
		"gavel serve --data gavel-data --http 127.0.0.1:0 --nats-listen 127.0.0.1:0"},
	"statement issuer": {"[--out DIR] [--alg ALG]", "gavel statement issuer --out iss"},
	"statement sign": {"--key KEY.pem --chain CHAIN.pem --issuer DID --subject S [--content-type T] PAYLOAD",
		`gavel statement sign --key iss/key.pem --chain iss/chain.pem --issuer "$(cat iss/did.txt)" --subject demo payload.txt > st.cose`},
	"statement register": {"[--url U] [--wait D] STATEMENT", `gavel statement register --url "$GAVEL_URL" st.cose`},
	"receipt":            {"[--url U] --txid VIEW.SEQNO [--wait D]", `gavel receipt --url "$GAVEL_URL" --txid 1.3 > receipt.cose`},
	"member keygen":      {"--name NAME [--out DIR] [--alg ALG]", "gavel member keygen --out keys --name alice"},
	"member propose": {"[--url U] --cert CERT --key KEY [--json] PROPOSAL.json|-",
		`gavel member propose --url "$GAVEL_URL" --cert member0_cert.pem --key member0_privk.pem proposal.json`},
	"member vote": {"[--url U] --cert CERT --key KEY --proposal ID [--ballot BALLOT.js | --reject] [--json]",
		`gavel member vote --url "$GAVEL_URL" --cert member0_cert.pem --key member0_privk.pem --proposal "$PROPOSAL"`},
	"member withdraw": {"[--url U] --cert CERT --key KEY --proposal ID [--json]",
		`gavel member withdraw --url "$GAVEL_URL" --cert member0_cert.pem --key member0_privk.pem --proposal "$PROPOSAL"`},
	"member proposals": {"[--url U] [--state STATE] [--json]", `gavel member proposals --url "$GAVEL_URL" --state Open`},
	"member ack": {"[--url U] --cert CERT --key KEY [--json]",
		`gavel member ack --url "$GAVEL_URL" --cert keys/alice_cert.pem --key keys/alice_privk.pem`},
	"member sign": {"--type proposal|ballot|withdrawal|state_digest|ack [--proposal-id ID] --cert CERT --key KEY [PAYLOAD]",
		"gavel member sign --type proposal --cert member0_cert.pem --key member0_privk.pem proposal.json > proposal.cose"},
	"bench commit":   {"[-n N] [--clients N] [--json] [flags]", "gavel bench commit -n 30000 --json"},
	"bench gov":      {"[--proposals N] [--clients N] [--json] [flags]", "gavel bench gov --proposals 5000"},
	"bench replay":   {"[--entries N] [--clients N] [--json]", "gavel bench replay --entries 50000"},
	"bench failover": {"[-n N] [--clients N] [--stepdowns N] [--json]", "gavel bench failover -n 5000 --stepdowns 5"},
	"bench scale":    {"[--entries N] [--window N] [--clients N] [--json]", "gavel bench scale --entries 100000 --window 10000"},
	"dev snp-signer": {"--out DIR", "gavel dev snp-signer --out snp"},
	"node keygen":    {"--out DIR (prints the node id: hex SHA-256 of the public key's DER)", "gavel node keygen --out n1"},
	"node join": {"--url U --key-dir DIR --config node.json [--wait] (prints {\"node_id\", \"status\"})",
		`gavel node join --url "$GAVEL_URL" --key-dir n1 --config node.json --wait`},
	"node status":         {"--url U [--id ID] [--json]", `gavel node status --url "$GAVEL_URL" --id "$NODE_ID"`},
	"node delete":         {"--url U --id ID", `gavel node delete --url "$GAVEL_URL" --id "$NODE_ID"`},
	"node stepdown":       {"--url U --data DIR --successor ID", `gavel node stepdown --url "$GAVEL_URL" --data gavel-data --successor "$NODE_ID"`},
	"nodes":               {"--url U [--removable] [--json]", `gavel nodes --url "$GAVEL_URL" --removable`},
	"projections rebuild": {"--data DIR (refolds the node read models from the ledger alone, prints them and whether the kept ones were the same)", "gavel projections rebuild --data gavel-data"},
	"demo code-upgrade":   {"[flags]", "gavel demo code-upgrade"},
	"node run": {"--base DIR --url U [--nats N --creds F] [--heartbeat D] [--no-auto-accept]",
		`gavel node run --base D/nodes/node0 --url "$GAVEL_URL"`},
	"node updates":      {"--base DIR [--follow]", "gavel node updates --base D/nodes/node0 --follow"},
	"node accept":       {"--base DIR HASH", "gavel node accept --base D/nodes/node0 \"$HASH\""},
	"bootstrap":         {"--dir D [--nodes N] [--members M] [--notary NAME]…", "gavel bootstrap --dir net --nodes 3 --members 2"},
	"demo parameters":   {"[--dir D]", "gavel demo parameters"},
	"demo live-upgrade": {"[--dir D] [--json] [--writers N] [--pause D]", "gavel demo live-upgrade --json"},
	"bench map":         {"[--nodes N] [--clients N] [--duration D]", "gavel bench map --nodes 10000"},
	"bench replicated": {"[-n N] [--clients N] [--rounds N] [--json]",
		"gavel bench replicated -n 5000 --rounds 3"},
}

// defaultUsage prints "usage: gavel NAME ARGS", the summary, an example
// and the flags.
func defaultUsage(fs *flag.FlagSet, name string) func() {
	return func() {
		w := fs.Output()
		s := synopses[name]
		fmt.Fprintf(w, "usage: gavel %s %s\n\n", name, s.args)
		if c, ok := commands[name]; ok {
			fmt.Fprintf(w, "%s.\n\n", c.summary)
		}
		if s.example != "" {
			fmt.Fprintf(w, "example:\n  %s\n\n", s.example)
		}
		fmt.Fprintln(w, "flags:")
		fs.PrintDefaults()
	}
}

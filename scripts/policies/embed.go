// Package policies holds gavel's example node join policies (for
// set_node_join_policy): vds2.js and min_svn.js.
package policies

import _ "embed"

// VDS2 accepts statements whose receipts all have vds 2.
//
//go:embed vds2.js
var VDS2 string

// MinSVN is CCF's documented SVN rule with vds 2.
//
//go:embed min_svn.js
var MinSVN string

// The SVN rule of CCF's code upgrade documentation (its "Example Policy"),
// for gavel: code is admitted when its publisher signed a statement about
// its host data under the expected feed with a security version number at
// least MIN_SVN. Differences from the documentation's example, on purpose:
// receipts are checked for vds 2 (what CCF and gavel write; the example
// says 1), and the issuer and feed are the code publisher's (set them
// before proposing set_node_join_policy).
const MIN_SVN = 2;
const FEED = "gavel/code";

export function apply(transparent_statements) {
  for (const ts of transparent_statements) {
    if (ts.phdr.cwt.sub !== FEED) {
      return "Invalid subject: " + ts.phdr.cwt.sub;
    }
    if (ts.phdr.cwt.svn === undefined) {
      return "No SVN";
    }
    if (ts.phdr.cwt.svn < MIN_SVN) {
      return "SVN too low: " + ts.phdr.cwt.svn;
    }
    for (const r of ts.receipts) {
      if (r.vds !== 2) return "Unexpected VDS: " + r.vds;
      if (r.leaves.length === 0) return "receipt proves no leaf";
    }
  }
  return true;
}

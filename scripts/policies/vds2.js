// A join policy that accepts a transparent statement only when every one
// of its receipts is a CCF ledger receipt: vds 2, CCF_LEDGER_SHA256, the
// value gavel writes, as CCF's own code and the IETF CCF profile do.
// (CCF's code upgrade documentation says 1 in its example: a receipt that
// policy accepts is not one CCF or gavel issues.) gavel has already
// checked each receipt's signature by this service and its claims digest;
// the policy only compares values.
export function apply(transparent_statements) {
  if (transparent_statements.length === 0) return "no transparent statement";
  for (const ts of transparent_statements) {
    if (typeof ts.phdr.cwt.iss !== "string" || !ts.phdr.cwt.iss.startsWith("did:x509:")) {
      return "issuer is not a did:x509: " + ts.phdr.cwt.iss;
    }
    for (const r of ts.receipts) {
      if (r.vds !== 2) return "Unexpected VDS: " + r.vds;
    }
  }
  return true;
}

// gavel's dashboard: read-only pages over /ui/api/state (polled with an
// ETag) and, for receipts, /entries/{txid}/receipt verified here with
// WebCrypto. Every piece of data reaches the DOM as text (el, txt), never
// as markup, and long text is clipped.
"use strict";

const POLL_MS = 2000;
const CLIP = 160;

// ---- DOM helpers: text only --------------------------------------------

function clip(v, n) {
  const s = v === undefined || v === null ? "" : String(v);
  n = n || CLIP;
  return s.length > n ? s.slice(0, n) + "…" : s;
}

// el builds an element; string children become clipped text nodes.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = clip(v, attrs.clip);
    else if (k === "clip") continue;
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(clip(c)) : c);
  }
  return e;
}

// txt is a clipped span whose title carries a longer (still clipped) form.
function txt(v, n, cls) {
  const s = v === undefined || v === null ? "" : String(v);
  const span = el("span", { class: cls, text: s, clip: n || CLIP });
  if (s.length > (n || CLIP)) { span.title = clip(s, 1000); span.classList.add("clipped"); }
  return span;
}

function mono(v, n) { return txt(v, n || 80, "mono"); }

function link(href, text, attrs) { return el("a", Object.assign({ href: href }, attrs || {}), text); }

function state(s) { return el("span", { class: "state state-" + String(s).replace(/[^A-Za-z]/g, ""), text: s, clip: 30 }); }

function table(headers, rows, attrs) {
  return el("table", attrs || {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))));
}

function kv(pairs, attrs) {
  return el("table", Object.assign({ class: "kv" }, attrs || {}), el("tbody", {}, pairs.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))));
}

function empty(text) { return el("p", { class: "empty" }, text); }

function json(v, n) {
  let s;
  try { s = JSON.stringify(v, null, 2); } catch (e) { s = String(v); }
  return el("pre", { text: s, clip: n || 2000 });
}

function section(title, ...body) { return [el("h2", {}, title), ...body]; }

// ---- state polling ------------------------------------------------------

let current = null; // the last DashboardState
let etag = "";
let samples = []; // [ms, seqno] for the commit rate
let lastError = "";

async function poll() {
  try {
    const resp = await fetch("/ui/api/state", { headers: etag ? { "If-None-Match": etag } : {}, cache: "no-store" });
    if (resp.status === 200) {
      etag = resp.headers.get("ETag") || "";
      current = await resp.json();
      lastError = "";
      render();
    } else if (resp.status !== 304) {
      lastError = "the service answered " + resp.status;
      render();
    } else if (lastError) {
      lastError = "";
      render();
    }
    if (current) sample(current);
  } catch (e) {
    lastError = "cannot reach the service (" + e.message + ")";
    render();
  }
  setLive();
  setTimeout(poll, POLL_MS);
}

function seqnoOf(txid) {
  const m = /^\d+\.(\d+)$/.exec(txid || "");
  return m ? Number(m[1]) : 0;
}

function sample(s) {
  const now = Date.now();
  samples.push([now, seqnoOf(s.network.last_txid)]);
  samples = samples.filter(([t]) => now - t <= 60000);
}

// commitRate is entries per second over the last minute of polls.
function commitRate() {
  if (samples.length < 2) return null;
  const [t0, s0] = samples[0];
  const [t1, s1] = samples[samples.length - 1];
  return t1 > t0 ? ((s1 - s0) * 1000) / (t1 - t0) : null;
}

function setLive() {
  const live = document.getElementById("live");
  if (lastError) {
    live.dataset.state = "error";
    live.textContent = "not updating";
  } else if (current) {
    live.dataset.state = "live";
    live.textContent = "live · " + new Date().toLocaleTimeString();
  }
}

// ---- routing ------------------------------------------------------------

function route() {
  const p = location.pathname.replace(/^\/ui\/?/, "").replace(/\/$/, "");
  const [page, ...rest] = p.split("/");
  return { page: page || "overview", id: decodeURIComponent(rest.join("/")) };
}

const pages = {
  overview: { title: "Overview", render: overview },
  proposals: { title: "Proposals", render: proposals },
  members: { title: "Members", render: members },
  nodes: { title: "Nodes", render: nodes },
  code: { title: "Code identities and join policy", render: code },
  map: { title: "Network map", render: netmap },
  ledger: { title: "Ledger", render: ledger },
  receipt: { title: "Receipt", render: receipt, static: true },
};

let staticRendered = "";

function render() {
  const r = route();
  const banner = document.getElementById("banner");
  banner.hidden = !lastError;
  banner.textContent = lastError ? "The data below may be stale: " + lastError + "." : "";
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === r.page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const main = document.getElementById("main");
  const pg = pages[r.page];
  if (!pg) {
    document.title = "Not found · gavel";
    main.replaceChildren(el("h1", {}, "No such page"), el("p", { class: "error", "data-testid": "not-found" }, "There is no dashboard page at ", mono(location.pathname, 120), ". "), link("/ui/", "Back to the overview"));
    return;
  }
  document.title = pg.title + " · gavel";
  if (pg.static) {
    // A page that fetches its own data renders once per URL.
    if (staticRendered === location.pathname) return;
    staticRendered = location.pathname;
    main.replaceChildren(el("h1", {}, pg.title), el("p", { class: "empty" }, "Loading…"));
    pg.render(r, main);
    return;
  }
  if (!current) {
    main.replaceChildren(el("h1", {}, pg.title), lastError ? el("p", { class: "error", "data-testid": "error" }, "Cannot show this page: " + lastError + ".") : empty("Loading…"));
    return;
  }
  const body = [el("h1", {}, pg.title)];
  const errs = Object.entries(current.errors || {});
  if (errs.length) body.push(el("p", { class: "error", "data-testid": "part-errors" }, "Some data could not be read: " + errs.map(([k, v]) => k + " (" + v + ")").join("; ")));
  body.push(...pg.render(r, current));
  main.replaceChildren(...body);
}

// ---- pages --------------------------------------------------------------

function overview(r, s) {
  const n = s.network;
  const rate = commitRate();
  const write = n.writable ? el("span", { class: "ok" }, "writable") : el("span", { class: "error" }, "not writable: ", txt((n.write_error || {}).code), " ", txt((n.write_error || {}).message, 200));
  return [kv([
    ["Service status", state(n.service_status)],
    ["Primary", mono(s.leader || n.primary_id)],
    ["View", String(s.view || n.current_view)],
    ["Last transaction", n.last_txid ? el("span", { "data-testid": "last-txid", "data-seqno": seqnoOf(n.last_txid) }, mono(n.last_txid)) : empty("none yet")],
    ["Last signed transaction", n.last_signed_txid ? link("/ui/receipt/" + n.last_signed_txid, n.last_signed_txid) : empty("none yet")],
    ["Commit rate", rate === null ? empty("measuring…") : el("span", { "data-testid": "commit-rate" }, rate.toFixed(1) + " entries/s")],
    ["Write path", write],
    ["Members", String(s.members.length)],
    ["Nodes", String(s.nodes.length)],
    ["Open proposals", String(s.proposals.filter((p) => p.state === "Open").length)],
  ], { "data-testid": "overview" })];
}

function actionsOf(p) {
  if (!Array.isArray(p.actions) || p.actions.length === 0) return [empty("no actions")];
  return p.actions.map((a) => el("div", { class: "action" }, el("strong", {}, txt(a && a.name, 64)), json(a && a.args, 1500)));
}

function proposalCard(p) {
  const ballots = Object.entries(p.ballots || {});
  const votes = p.final_votes || {};
  return el("div", { class: "card", "data-testid": "proposal", "data-id": p.proposal_id },
    el("div", {}, link("/ui/proposals/" + p.proposal_id, clip(p.proposal_id, 24)), " ", state(p.state), " by ", mono(p.proposer_id, 24),
      p.created_txid ? [" at ", mono(p.created_txid)] : null),
    el("h2", {}, "Actions"), ...actionsOf(p),
    el("h2", {}, "Ballots (" + ballots.length + ")"),
    ballots.length === 0 ? empty("no ballots yet") :
      table(["member", "ballot", "final vote"], ballots.map(([m, script]) => [mono(m, 24), el("pre", { text: script, clip: 600 }),
        m in votes ? String(votes[m]) : empty("—")]), { "data-testid": "ballots" }),
    Object.keys(p.vote_failures || {}).length ? el("p", { class: "error" }, "Vote failures: ", txt(JSON.stringify(p.vote_failures), 300)) : null,
    p.failure ? el("p", { class: "error" }, "Failure: ", txt(p.failure, 300)) : null);
}

function proposals(r, s) {
  if (r.id) {
    const p = s.proposals.find((x) => x.proposal_id === r.id);
    return p ? [proposalCard(p)] : [el("p", { class: "error", "data-testid": "not-found" }, "No proposal ", mono(r.id, 80), " among the latest " + s.proposals.length + ".")];
  }
  if (s.proposals.length === 0) return [empty("No proposals yet.")];
  return s.proposals.map(proposalCard);
}

function members(r, s) {
  if (s.members.length === 0) return [empty("No members.")];
  return [table(["member id", "status", "member data", "certificate"], s.members.map((m) => [
    mono(m.memberId, 24), state(m.status), m.memberData === undefined ? empty("none") : json(m.memberData, 400), mono(m.certificate, 60)]),
  { "data-testid": "members" })];
}

function nodes(r, s) {
  if (s.nodes.length === 0) return [empty("No nodes.")];
  return [table(["node id", "status", "role", "code version", "host data", "address", "primary", "removable"], s.nodes.map((n) => [
    mono(n.node_id, 24), state(n.status), txt(n.role, 20), mono(n.code_version || "—", 40), mono(n.host_data || "—", 24),
    txt(n.address || "—", 60), n.primary ? "primary" : "", n.retired_committed ? el("span", { class: "ok" }, "removable") : "no"]),
  { "data-testid": "nodes" })];
}

function code(r, s) {
  const out = [];
  const v = s.version;
  out.push(...section("This replica", v ? kv([["gavel version", txt(v.gavel_version)], ["code version", mono(v.code_version)], ["host data", mono(v.host_data)],
    ["attestation", v.virtual_attestation ? "virtual (proves nothing about hardware)" : v.dev_snp_root ? "SEV-SNP, development root" : "SEV-SNP"]], { "data-testid": "version" }) : empty("unknown")));
  const jp = s.join_policies;
  if (!jp) { out.push(empty("The join policy could not be read.")); return out; }
  const snp = Object.entries(jp.snp.hostData || {});
  out.push(...section("Trusted SEV-SNP host data", snp.length ? table(["host data", "security policy"], snp.map(([h, p]) => [mono(h, 64), p ? el("pre", { text: p, clip: 400 }) : empty("none")]), { "data-testid": "snp-host-data" }) : empty("No SEV-SNP host data is trusted.")));
  out.push(...section("Trusted SEV-SNP measurements", jp.snp.measurements.length ? table(["measurement"], jp.snp.measurements.map((m) => [mono(m, 96)])) : empty("None.")));
  out.push(...section("Trusted virtual host data", jp.virtual.hostData.length ? table(["host data"], jp.virtual.hostData.map((h) => [mono(h, 64)]), { "data-testid": "virtual-host-data" }) : empty("No virtual host data is trusted.")));
  out.push(...section("Join policy script", s.join_policy ? el("pre", { "data-testid": "join-policy", text: s.join_policy, clip: 4000 }) : empty("No join policy is set: nodes whose host data is not trusted cannot join.")));
  out.push(...section("Join policies (CCF's view)", json(jp, 3000)));
  return out;
}

// countdown is the time left until deadline (ISO), refreshed every second.
function countdown(deadline) {
  const span = el("span", { class: "countdown", "data-testid": "countdown", "data-deadline": deadline });
  tick(span);
  return span;
}

function tick(span) {
  const left = Date.parse(span.dataset.deadline) - Date.now();
  if (isNaN(left)) { span.textContent = "unknown deadline"; return; }
  if (left <= 0) { span.textContent = "deadline passed: the flag day is due"; return; }
  const s = Math.floor(left / 1000);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  span.textContent = (d ? d + "d " : "") + h + "h " + m + "m " + (s % 60) + "s left";
}

setInterval(() => document.querySelectorAll(".countdown").forEach(tick), 1000);

function paramsTable(p) {
  if (!p || typeof p !== "object") return empty("none");
  return kv(Object.entries(p).map(([k, v]) => [k, typeof v === "object" ? json(v, 800) : txt(v, 200)]));
}

function netmap(r, s) {
  const m = s.network_map;
  if (!m) return [empty("This service has no network map.")];
  const out = [];
  out.push(...section("Current parameters", el("p", {}, "hash ", mono(m.parameters_hash, 64)), el("div", { "data-testid": "parameters" }, paramsTable(m.parameters))));
  const u = m.update;
  out.push(el("h2", {}, "Pending update"));
  if (!u) out.push(empty("No parameters update is pending."));
  else {
    out.push(el("div", { class: "card", "data-testid": "pending-update" },
      kv([["description", txt(u.description, 200)], ["new parameters hash", mono(u.hash, 64)], ["deadline", [mono(u.deadline), " — ", countdown(u.deadline)]],
        ["accepted by", u.accepted.length ? el("ul", { "data-testid": "accepted" }, u.accepted.map((a) => el("li", {}, mono(a.node_id, 24), " at ", mono(a.txid)))) : empty("nobody yet")],
        ["not yet accepted", (u.pending || []).length ? el("ul", {}, u.pending.map((n) => el("li", {}, mono(n, 24)))) : empty("nobody")]]),
      el("h2", {}, "New parameters"), paramsTable(u.parameters)));
  }
  out.push(el("h2", {}, "NodeInfos (" + m.node_infos.length + ")"));
  out.push(m.node_infos.length === 0 ? empty("No node has published its NodeInfo.") :
    table(["hash", "node id", "legal identities", "addresses", "platform version", "serial"], m.node_infos.map((n) => [
      mono(n.hash, 16), mono(n.node_id, 16), el("div", {}, (n.info.legal_identities || []).map((x) => el("div", {}, txt(x, 120)))),
      el("div", {}, (n.info.addresses || []).map((x) => el("div", {}, txt(x, 80)))), String(n.info.platform_version), String(n.info.serial)]),
    { "data-testid": "node-infos" }));
  return out;
}

function ledger(r, s) {
  if (s.ledger.length === 0) return [empty("The ledger is empty.")];
  return [table(["transaction", "kind", "time", "receipt", "statement"], s.ledger.map((e) => [
    mono(e.txid), txt(e.kind, 30), txt(e.time, 40),
    e.signed ? link("/ui/receipt/" + e.txid, "receipt", { "data-testid": "receipt-link" }) : empty("awaiting signature"),
    e.kind === "statement" && e.signed ? link("/entries/" + e.txid + "/statement", "transparent statement", { download: "statement-" + e.txid + ".cose" }) : ""]),
  { "data-testid": "ledger" })];
}

// ---- receipts: CBOR, DER and WebCrypto ----------------------------------

// cbor decodes one CBOR item (RFC 8949's subset COSE uses).
function cbor(bytes) {
  let i = 0;
  const u8 = () => bytes[i++];
  const len = (info) => {
    if (info < 24) return info;
    let n = 0;
    const k = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : -1;
    if (k < 0) throw new Error("unsupported CBOR length");
    for (let j = 0; j < k; j++) n = n * 256 + u8();
    return n;
  };
  const item = () => {
    if (i >= bytes.length) throw new Error("truncated CBOR");
    const b = u8(), major = b >> 5, info = b & 31;
    switch (major) {
      case 0: return len(info);
      case 1: return -1 - len(info);
      case 2: { const n = len(info); const v = bytes.slice(i, i + n); if (v.length !== n) throw new Error("truncated CBOR"); i += n; return v; }
      case 3: { const n = len(info); const v = new TextDecoder().decode(bytes.slice(i, i + n)); i += n; return v; }
      case 4: { const n = len(info); const a = []; for (let j = 0; j < n; j++) a.push(item()); return a; }
      case 5: { const n = len(info); const m = new Map(); for (let j = 0; j < n; j++) { const k = item(); m.set(k, item()); } return m; }
      case 6: { const tag = len(info); return { tag, value: item() }; }
      case 7: return info === 20 ? false : info === 21 ? true : info === 22 ? null : undefined;
    }
  };
  const v = item();
  if (i !== bytes.length) throw new Error("trailing bytes after CBOR");
  return v;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

function bstrHead(n) {
  if (n < 24) return Uint8Array.of(0x40 + n);
  if (n < 256) return Uint8Array.of(0x58, n);
  if (n < 65536) return Uint8Array.of(0x59, n >> 8, n & 255);
  return Uint8Array.of(0x5a, (n >>> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255);
}

// sigStructure is COSE's Sig_structure for Signature1, no external AAD.
function sigStructure(protectedBytes, payload) {
  const context = new TextEncoder().encode("Signature1");
  return concat(Uint8Array.of(0x84, 0x60 + context.length), context, bstrHead(protectedBytes.length), protectedBytes, Uint8Array.of(0x40), bstrHead(payload.length), payload);
}

const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const sha256 = async (b) => new Uint8Array(await crypto.subtle.digest("SHA-256", b));

// spkiOf finds a certificate's SubjectPublicKeyInfo in its DER.
function spkiOf(der) {
  let i = 0;
  const tlv = () => {
    const start = i, tag = der[i++];
    let n = der[i++];
    if (n & 0x80) { const k = n & 0x7f; n = 0; for (let j = 0; j < k; j++) n = n * 256 + der[i++]; }
    const body = i;
    i += n;
    return { tag, start, body, end: i };
  };
  const cert = tlv(); i = cert.body;
  const tbs = tlv(); i = tbs.body;
  let f = tlv();
  if (f.tag === 0xa0) f = tlv(); // version
  for (let k = 0; k < 5; k++) f = tlv(); // signature, issuer, validity, subject, spki
  return der.slice(f.start, f.end);
}

function pemBytes(pem) {
  const b64 = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

const curves = { "-7": ["P-256", "SHA-256"], "-35": ["P-384", "SHA-384"], "-36": ["P-521", "SHA-512"] };

// verifyReceipt checks a CCF receipt in the browser: the Merkle root from
// the leaf and its path, the kid, and the service's signature over it.
async function verifyReceipt(raw, certPEM) {
  const top = cbor(raw);
  if (!top || top.tag !== 18 || !Array.isArray(top.value) || top.value.length !== 4) throw new Error("not a COSE_Sign1");
  const [prot, unprot, payload, sig] = top.value;
  const hdr = cbor(prot);
  const alg = hdr.get(1), kid = hdr.get(4), ccf = hdr.get("ccf.v1");
  const facts = { alg, kid: kid ? new TextDecoder().decode(kid) : "", txid: ccf instanceof Map ? ccf.get("txid") : "" };
  let root;
  const proofs = unprot instanceof Map && unprot.get(396) instanceof Map ? unprot.get(396).get(-1) : null;
  if (proofs && proofs.length) {
    const proof = cbor(proofs[0]);
    const [wsd, ce, cd] = proof.get(1);
    let h = await sha256(concat(wsd, await sha256(new TextEncoder().encode(ce)), cd));
    for (const [left, sib] of proof.get(2)) h = await sha256(left ? concat(sib, h) : concat(h, sib));
    root = h;
    Object.assign(facts, { leafTxid: (/^ce:([0-9.]+):/.exec(ce) || [])[1] || "", claimsDigest: hex(cd), path: proof.get(2).length });
  } else if (payload instanceof Uint8Array && payload.length === 32) {
    root = payload; // a signature entry's receipt: the signed root itself
    Object.assign(facts, { signatureEntry: true, path: 0 });
  } else throw new Error("the receipt has no inclusion proof");
  facts.root = hex(root);
  const curve = curves[String(alg)];
  if (!curve) throw new Error("algorithm " + alg + " cannot be verified here");
  const spki = spkiOf(pemBytes(certPEM));
  if (facts.kid && facts.kid !== hex(await sha256(spki))) throw new Error("the receipt's kid is not the service key's");
  const key = await crypto.subtle.importKey("spki", spki, { name: "ECDSA", namedCurve: curve[0] }, false, ["verify"]);
  facts.valid = await crypto.subtle.verify({ name: "ECDSA", hash: curve[1] }, key, sig, sigStructure(prot, root));
  return facts;
}

async function receipt(r, main) {
  const tx = r.id;
  const head = [el("h1", {}, "Receipt of ", mono(tx, 40))];
  const links = el("p", {}, link("/entries/" + encodeURIComponent(tx) + "/receipt", "download the receipt (COSE)", { download: "receipt-" + tx + ".cose", "data-testid": "receipt-download" }),
    " · ", link("/ui/ledger", "back to the ledger"));
  if (!/^\d+\.\d+$/.test(tx)) {
    main.replaceChildren(...head, el("p", { class: "error", "data-testid": "receipt-error" }, "Not a transaction id."), links);
    return;
  }
  let resp;
  try {
    resp = await fetch("/entries/" + encodeURIComponent(tx) + "/receipt", { cache: "no-store" });
  } catch (e) {
    main.replaceChildren(...head, el("p", { class: "error", "data-testid": "receipt-error" }, "Cannot reach the service: " + e.message), links);
    return;
  }
  if (resp.status !== 200) {
    let msg = "the service answered " + resp.status;
    try { const b = await resp.json(); msg += ": " + b.error.code + " — " + b.error.message; } catch (e) { /* not JSON */ }
    main.replaceChildren(...head, el("p", { class: resp.status === 202 ? "empty" : "error", "data-testid": "receipt-error" }, clip(msg, 300)), links);
    return;
  }
  const raw = new Uint8Array(await resp.arrayBuffer());
  const info = [["size", raw.length + " bytes"]];
  let verdict;
  if (!window.crypto || !crypto.subtle) {
    verdict = el("p", { class: "empty", "data-testid": "receipt-verdict", "data-verified": "unsupported" }, "This browser offers no WebCrypto here, so it cannot check the receipt itself; check it with gavel audit verify-receipt.");
  } else {
    while (!current) await new Promise((res) => setTimeout(res, 100));
    try {
      const f = await verifyReceipt(raw, current.network.service_certificate);
      info.push(["signature transaction", mono(f.txid)], ["algorithm", String(f.alg)], ["key id", mono(f.kid, 64)], ["Merkle root", mono(f.root, 64)]);
      if (f.signatureEntry) info.push(["entry", "a signature entry: the receipt is its own signed root"]);
      else info.push(["entry", mono(f.leafTxid)], ["claims digest", mono(f.claimsDigest, 64)], ["path length", String(f.path)]);
      verdict = f.valid
        ? el("p", { class: "ok", "data-testid": "receipt-verdict", "data-verified": "true" }, "Verified in this browser with WebCrypto: the service key signed the Merkle root this receipt proves.")
        : el("p", { class: "error", "data-testid": "receipt-verdict", "data-verified": "false" }, "NOT valid: the signature does not verify against the service certificate.");
    } catch (e) {
      verdict = el("p", { class: "error", "data-testid": "receipt-verdict", "data-verified": "error" }, "Could not check the receipt here: " + clip(e.message, 200));
    }
  }
  main.replaceChildren(...head, verdict, kv(info, { "data-testid": "receipt" }), links);
}

// ---- start ------------------------------------------------------------------

render();
poll();

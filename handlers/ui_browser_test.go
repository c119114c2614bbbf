package handlers_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's headless Chromium. CI installs it
// (.ci/run); where it is missing the test fails, unless
// GAVEL_SKIP_BROWSER=1 says this machine has no browser on purpose.
// GAVEL_CHROMIUM names another binary; GAVEL_UI_ARTIFACTS a folder that
// keeps the screenshots (default: the test's temporary folder).
func browser(t *testing.T) (context.Context, string) {
	t.Helper()
	path := os.Getenv("GAVEL_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("GAVEL_SKIP_BROWSER") == "1" {
			t.Skipf("no browser at %s and GAVEL_SKIP_BROWSER=1", path)
		}
		t.Fatalf("the dashboard tests need Chromium at %s (apt-get install -y chromium; .ci/run does): %v", path, err)
	}
	dir := os.Getenv("GAVEL_UI_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 1000), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx, dir
}

// step bounds one browser action, so a missing element fails the test
// with its name instead of hanging until the test's deadline.
func step(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 30*time.Second)
}

// page loads url, waits for sel and saves a screenshot named name.
func page(t *testing.T, ctx context.Context, dir, url, sel, name string) {
	t.Helper()
	c, cancel := step(ctx)
	defer cancel()
	if err := chromedp.Do(c, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		t.Fatalf("%s: waiting for %s: %v", url, sel, err)
	}
	shot(t, c, dir, name)
}

func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG (lower is JPEG)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	c, cancel := step(ctx)
	defer cancel()
	s, err := chromedp.Run(c, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	c, cancel := step(ctx)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// wantIn fails unless every want is in got.
func wantIn(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not show %q:\n%.1500s", what, w, got)
		}
	}
}

// unharmed checks that no hostile text became markup on the page.
func unharmed(t *testing.T, ctx context.Context, where string) {
	t.Helper()
	if eval[bool](t, ctx, `window.pwned !== undefined || document.querySelectorAll("main script, main img").length > 0`) {
		t.Errorf("%s: hostile text became markup", where)
	}
	if eval[bool](t, ctx, `document.body.innerText.includes("A".repeat(2500))`) {
		t.Errorf("%s: a 5000-character string is shown whole", where)
	}
}

// TestDashboardInABrowser loads every dashboard page against a real
// service with real data, checks what the DOM shows, follows a ledger
// entry to its receipt (verified by the page with WebCrypto), and saves a
// screenshot of each page.
func TestDashboardInABrowser(t *testing.T) {
	ctx, dir := browser(t)
	// A new service first: every page says what it has not got yet.
	fresh := newObserved(t)
	for _, c := range []struct{ path, want string }{
		{"/ui/proposals", "No proposals yet."},
		{"/ui/map", "No parameters update is pending."},
		{"/ui/map", "No node has published its NodeInfo."},
		{"/ui/code", "No join policy is set"},
	} {
		page(t, ctx, dir, fresh.url+c.path, "main h1", "empty"+strings.ReplaceAll(c.path, "/", "-"))
		sc, cancel := step(ctx)
		if _, err := chromedp.Run(sc, chromedp.Poll[bool](fmt.Sprintf(`document.querySelector("main").innerText.includes(%q)`, c.want))); err != nil {
			t.Errorf("a new service's %s never says %q: %v\n%s", c.path, c.want, err, text(t, ctx, "main"))
		}
		cancel()
	}
	fresh.srv.Close()
	fresh.r.Close()

	o := newObserved(t)
	p := o.populate(2)
	ui := o.url + "/ui"
	short := func(id string) string { return id[:24] }

	page(t, ctx, dir, ui+"/", `[data-testid=overview]`, "overview")
	net, err := o.c.Network(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantIn(t, "the overview", text(t, ctx, `[data-testid=overview]`), o.r.Node().ID, "Open", "writable", net.LastSignedTxID)
	// Live: a new entry shows up without a reload.
	st, err := o.iss.Sign("live", "text/plain", []byte("live update"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tx, err := o.c.RegisterAndWait(context.Background(), st, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	seqno := tx[strings.Index(tx, ".")+1:]
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`Number((document.querySelector("[data-testid=last-txid]") || {dataset: {}}).dataset.seqno) >= %s`, seqno))); err != nil {
		t.Fatalf("the overview never showed %s: %v", tx, err)
	}

	page(t, ctx, dir, ui+"/proposals", `[data-testid=proposal]`, "proposals")
	open := text(t, ctx, fmt.Sprintf(`[data-testid=proposal][data-id=%q]`, p.open))
	wantIn(t, "the open proposal", open, short(p.open), "Open", "set_member", jsonText(hostile), short(o.members[2].ID), "export function vote")
	wantIn(t, "the accepted update", text(t, ctx, fmt.Sprintf(`[data-testid=proposal][data-id=%q]`, p.update)), "Accepted", "set_network_parameters")
	unharmed(t, ctx, "proposals")
	page(t, ctx, dir, ui+"/proposals/"+p.open, `[data-testid=ballots]`, "proposal")
	page(t, ctx, dir, ui+"/proposals/"+strings.Repeat("f", 64), `[data-testid=not-found]`, "proposal-unknown")

	page(t, ctx, dir, ui+"/members", `[data-testid=members]`, "members")
	members := text(t, ctx, `[data-testid=members]`)
	for _, m := range o.members {
		wantIn(t, "members", members, short(m.ID))
	}
	unharmed(t, ctx, "members")

	page(t, ctx, dir, ui+"/nodes", `[data-testid=nodes]`, "nodes")
	wantIn(t, "nodes", text(t, ctx, `[data-testid=nodes]`), short(o.alice.id), short(o.bob.id), short(o.pending.id), "Trusted", "Pending", "service", "primary")

	page(t, ctx, dir, ui+"/code", `[data-testid=version]`, "code")
	wantIn(t, "code identities", text(t, ctx, "main"), "code version", "Trusted virtual host data", "Join policies")
	wantIn(t, "the join policy", text(t, ctx, `[data-testid=join-policy]`), "export function apply(statements)", jsonText(hostile))
	unharmed(t, ctx, "code identities")

	page(t, ctx, dir, ui+"/map", `[data-testid=pending-update]`, "map")
	upd := text(t, ctx, `[data-testid=pending-update]`)
	wantIn(t, "the pending update", upd, "a notary", hostile, p.updateHash, short(o.alice.id), short(o.bob.id), "O=Notary")
	if cd := text(t, ctx, `[data-testid=countdown]`); !regexp.MustCompile(`^0h 5\dm \d+s left$`).MatchString(cd) {
		t.Errorf("countdown %q", cd)
	}
	wantIn(t, "accepted by", text(t, ctx, `[data-testid=accepted]`), short(o.alice.id))
	wantIn(t, "NodeInfos", text(t, ctx, `[data-testid=node-infos]`), "O=Alice,L=London,C=GB", "O=Bob,L=Paris,C=FR")
	unharmed(t, ctx, "map")

	// The ledger, and from a statement's entry to its receipt.
	page(t, ctx, dir, ui+"/ledger", `[data-testid=ledger]`, "ledger")
	wantIn(t, "the ledger", text(t, ctx, `[data-testid=ledger]`), p.statements[0], "statement", "proposal", "signature")
	link := fmt.Sprintf(`a[href="/ui/receipt/%s"]`, p.statements[0])
	c, cancel := step(ctx)
	defer cancel()
	if err := chromedp.Do(c, chromedp.Click(chromedp.CSS(link)), chromedp.WaitVisible(chromedp.CSS(`[data-testid=receipt-verdict]`))); err != nil {
		t.Fatalf("from the ledger to the receipt: %v", err)
	}
	shot(t, ctx, dir, "receipt")
	if u := eval[string](t, ctx, `location.pathname`); u != "/ui/receipt/"+p.statements[0] {
		t.Errorf("the receipt link went to %s", u)
	}
	if v := eval[string](t, ctx, `document.querySelector("[data-testid=receipt-verdict]").dataset.verified`); v != "true" {
		t.Errorf("the page did not verify the receipt: %s: %s", v, text(t, ctx, `[data-testid=receipt-verdict]`))
	}
	wantIn(t, "the receipt", text(t, ctx, `[data-testid=receipt]`), p.statements[0], "Merkle root")
	// The page's verifier refuses a receipt with one bit changed, in the
	// signature or in the leaf (the claims digest near the end of the proof).
	c, cancel = step(ctx)
	defer cancel()
	verdicts, err := chromedp.Run(c, chromedp.Evaluate[[]any](fmt.Sprintf(`(async () => {
		const raw = new Uint8Array(await (await fetch("/entries/%s/receipt")).arrayBuffer());
		const cert = current.network.service_certificate;
		const out = [(await verifyReceipt(raw, cert)).valid];
		for (const at of [raw.length - 1, raw.length - 100]) {
			const bad = raw.slice(); bad[at] ^= 1;
			try { out.push((await verifyReceipt(bad, cert)).valid); } catch (e) { out.push("refused: " + e.message); }
		}
		return out;
	})()`, p.statements[0]), chromedp.EvalAwaitPromise))
	if err != nil || len(verdicts) != 3 || verdicts[0] != true || verdicts[1] == true || verdicts[2] == true {
		t.Errorf("the browser's verifier on a good and two tampered receipts: %v %v", verdicts, err)
	}

	// A signature entry's receipt is its own signed root.
	page(t, ctx, dir, ui+"/receipt/"+net.LastSignedTxID, `[data-testid=receipt-verdict]`, "receipt-signature")
	if v := eval[string](t, ctx, `document.querySelector("[data-testid=receipt-verdict]").dataset.verified`); v != "true" {
		t.Errorf("signature receipt: %s: %s", v, text(t, ctx, `[data-testid=receipt-verdict]`))
	}
	// Bad and unknown receipts say so.
	page(t, ctx, dir, ui+"/receipt/9.99999", `[data-testid=receipt-error]`, "receipt-unknown")
	page(t, ctx, dir, ui+"/receipt/%3Cscript%3E", `[data-testid=receipt-error]`, "receipt-bad")
	unharmed(t, ctx, "a bad receipt id")

	// Unknown pages are a clear 404.
	page(t, ctx, dir, ui+"/no/such/page", `[data-testid=not-found]`, "not-found")
	if status, _, _ := get(t, ui+"/no/such/page"); status != 404 {
		t.Errorf("unknown page: %d", status)
	}
	// The service gone: the page keeps its data and says it is stale.
	page(t, ctx, dir, ui+"/nodes", `[data-testid=nodes]`, "nodes-again")
	o.srv.CloseClientConnections()
	o.srv.Close()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!document.getElementById("banner").hidden && document.getElementById("live").dataset.state === "error"`)); err != nil {
		t.Fatalf("no error state once the service is gone: %v", err)
	}
	shot(t, ctx, dir, "service-gone")
	wantIn(t, "the stale page", text(t, ctx, "#banner"), "may be stale", "cannot reach the service")
	wantIn(t, "the stale page", text(t, ctx, `[data-testid=nodes]`), short(o.alice.id))
	t.Logf("screenshots in %s", dir)
}

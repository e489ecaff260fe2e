package dunningapp

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natstest"
	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// consoleService runs the service with a first-sync backlog in the
// approval queue and an operator of each role; it returns the ops base URL
// and the tokens.
func consoleService(t *testing.T) (base string, tokens map[string]string, cid int64) {
	t.Helper()
	sim, fsrv := ficsimtest.Start(t, ficsim.Config{Seed: 4, Companies: 1, Invoices: 40})
	cid = sim.CompanyIDs()[0]
	ns, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	_, smtpPort := startSMTP(t)
	_, now := businessMorning()
	formalInvoice = ""
	env := []string{"NATS_URL=" + ns.ClientURL(), "FIC_BASE_URL=" + fsrv.URL, "FIC_ACCESS_TOKEN=" + sim.Token(),
		"SMTP_HOST=127.0.0.1", fmt.Sprintf("SMTP_PORT=%d", smtpPort), "SMTP_TLS=none",
		"DUNNING_OPS_ADDR=127.0.0.1:0", "DUNNING_OPS_TOKEN=shared-ops-token-0123", "DUNNING_GROUP_DELAY=200ms"}
	m, _ := runService(t, now, env...)
	tokens = map[string]string{}
	for _, role := range []string{"viewer", "operator", "admin"} {
		var out bytes.Buffer
		if err := Command(ctx, []string{"operators", "add", "-name", "Giulia " + role, "-role", role}, env, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		tokens[role] = regexp.MustCompile(`inc_[0-9a-f]+_[0-9a-f]+`).FindString(out.String())
	}
	p, src := ledgerPoller(t, js, fsrv.URL, sim.Token(), now)
	if _, err := p.Scan(ctx, src, cid, nil); err != nil {
		t.Fatal(err)
	}
	base = "http://" + m.OpsAddr
	waitFor(t, "the approval queue", 20*time.Second, func() bool {
		out, err := opsCall(ctx, Config{OpsURL: base, OpsToken: "shared-ops-token-0123"}, "GET", "/v1/approvals", nil)
		return err == nil && len(asList(out["approvals"])) > 2
	})
	// One case has had its two reminders and waits for its formal notice
	// (a diffida by PEC), as a long-running case would.
	cases, err := kvstore.NewCases(ctx, js, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	all, err := cases.List(ctx, cid)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		if c.State != dunning.Active || c.Invoice.DaysOverdue(rcv.DateIn(now(), rcv.Rome)) < 40 || c.Invoice.Client.PEC == "" {
			continue
		}
		_, rev, _ := cases.Get(ctx, cid, c.InvoiceID)
		at := now().Add(-10 * 24 * time.Hour)
		c.Sent = []dunning.Sent{{Stage: "first_reminder", Channel: policy.Email, At: at.Add(-7 * 24 * time.Hour), MessageID: "dunning-old-1", Outcome: "sent"},
			{Stage: "second_reminder", Channel: policy.Email, At: at, MessageID: "dunning-old-2", Outcome: "sent"}}
		c.Stage, c.CatchUp = 3, false
		c.Awaiting = &dunning.Approval{Stage: "formal_notice", Index: 3, Since: now(), Reason: "formal step"}
		if _, err := cases.Put(ctx, c, rev); err != nil {
			t.Fatal(err)
		}
		formalInvoice = c.Invoice.Number
		break
	}
	if formalInvoice == "" {
		t.Fatal("no case fit for a formal notice")
	}
	return base, tokens, cid
}

// formalInvoice is the number of the invoice whose formal notice waits.
var formalInvoice string

// signIn returns an HTTP client holding a console session.
func signIn(t *testing.T, base, token string) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.PostForm(base+"/console/login", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(string(b))
	if resp.StatusCode != 200 || csrf == nil {
		t.Fatalf("sign-in: %d\n%.500s", resp.StatusCode, b)
	}
	return c, csrf[1]
}

// The console's doors: no page without a session, no action without the
// session's CSRF token or from another site, a viewer cannot act, a
// revoked operator's session ends, redirects stay inside the console.
func TestConsoleSecurity(t *testing.T) {
	base, tokens, cid := consoleService(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(base + "/console/cases")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/login") {
		t.Fatalf("without a session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := http.PostForm(base+"/console/login", url.Values{"token": {"inc_000000000000_00"}}); resp.StatusCode != 200 {
		t.Errorf("bad token: %d", resp.StatusCode)
	}
	// An open redirect after sign-in is refused.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ = c.PostForm(base+"/console/login", url.Values{"token": {tokens["operator"]}, "next": {"//evil.example/x"}})
	if loc := resp.Header.Get("Location"); loc != "/console/" {
		t.Errorf("redirect after sign-in to %q", loc)
	}
	for _, k := range []string{"Content-Security-Policy", "X-Frame-Options"} {
		if resp.Header.Get(k) == "" {
			t.Errorf("no %s header", k)
		}
	}
	ck := resp.Cookies()
	if len(ck) == 0 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("session cookie %+v", ck)
	}

	out, _ := opsCall(context.Background(), Config{OpsURL: base, OpsToken: "shared-ops-token-0123"}, "GET", "/v1/approvals", nil)
	first := asList(out["approvals"])[0].(map[string]any)
	act := fmt.Sprintf("%s/console/cases/%d/%s/act", base, cid, num(first["invoice_id"]))

	op, csrf := signIn(t, base, tokens["operator"])
	post := func(cl *http.Client, form url.Values, hdr map[string]string) int {
		req, _ := http.NewRequest("POST", act, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// CSV export of the filtered cases.
	resp, err = op.Get(base + "/console/cases.csv?min_days=30")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil || len(rows) < 2 || rows[0][0] != "company_id" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV: %v %v", err, rows)
	}
	for _, r := range rows[1:] {
		if d, _ := strconv.Atoi(r[9]); d < 30 {
			t.Errorf("CSV row %v under the filter's 30 days", r)
		}
	}
	note := url.Values{"action": {"note"}, "note": {"chiamato il cliente"}}
	if code := post(op, note, nil); code != http.StatusForbidden {
		t.Errorf("no CSRF token: %d", code)
	}
	with := url.Values{"action": {"note"}, "note": {"chiamato il cliente"}, "csrf": {csrf}}
	if code := post(op, with, map[string]string{"Sec-Fetch-Site": "cross-site"}); code != http.StatusForbidden {
		t.Errorf("cross-site form: %d", code)
	}
	if code := post(op, with, map[string]string{"Origin": "https://evil.example"}); code != http.StatusForbidden {
		t.Errorf("foreign Origin: %d", code)
	}
	if code := post(op, with, map[string]string{"Sec-Fetch-Site": "same-origin"}); code != http.StatusSeeOther {
		t.Errorf("a proper note: %d", code)
	}
	viewer, vcsrf := signIn(t, base, tokens["viewer"])
	if code := post(viewer, url.Values{"action": {"note"}, "note": {"x"}, "csrf": {vcsrf}}, nil); code != http.StatusForbidden {
		t.Errorf("a viewer acted: %d", code)
	}
}

// chromium finds a headless browser, or skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on this machine (Debian: apt-get install chromium): browser test skipped")
	return ""
}

// A credit controller in a real browser: signs in, reads the letter of a
// formal step waiting for approval, approves it, filters the cases, pauses
// a whole client, sees the aging chart; and the pages pass an
// accessibility smoke check (every control labelled, the keyboard reaches
// the sign-in form and submits it).
func TestConsoleInTheBrowser(t *testing.T) {
	exe := chromium(t)
	base, tokens, _ := consoleService(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.WindowSize(1400, 1000))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", exe, err)
	}
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+"`"+sel+"`"+`).length`))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return n
	}
	// Sign in with the keyboard only: the token field has the focus, Enter submits.
	do("sign in", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.KeyEvent(tokens["operator"]+"\r"), chromedp.WaitVisible(chromedp.ID("h-approvals")))
	if m := text("main"); !strings.Contains(m, "Da approvare") || !strings.Contains(text("header"), "Giulia operator") {
		t.Fatalf("work queue:\n%.1500s", m)
	}
	a11y(t, ctx, "work queue")
	// Read a catch-up reminder waiting for approval, and approve it.
	do("read the letter", chromedp.Click(chromedp.CSS(`#h-approvals ~ table tr.stage-first_reminder a[href*="/letter"]`)), chromedp.WaitVisible(chromedp.CSS(`pre`)))
	if l := text("pre"); !strings.Contains(l, "€") || !strings.Contains(strings.ToLower(l), "fattura") {
		t.Fatalf("letter:\n%.1500s", l)
	}
	if count(`iframe[src*="/letter.html"]`) != 1 {
		t.Error("no HTML letter frame")
	}
	do("queue", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.ID("h-approvals")))
	before := count(`#h-approvals ~ table tbody tr`)
	caseURL, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#h-approvals ~ table tbody tr.stage-first_reminder td:nth-child(2) a').href`))
	if err != nil {
		t.Fatal(err)
	}
	do("approve", chromedp.Click(chromedp.CSS(`#h-approvals ~ table tbody tr.stage-first_reminder button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if f, after := text(".flash"), count(`#h-approvals ~ table tbody tr`); !strings.Contains(f, "approve") || after != before-1 {
		t.Fatalf("approve: flash %q, queue %d -> %d", f, before, after)
	}
	// The reminder went out: the case's timeline has the letter as it was sent.
	waitFor(t, "the approved reminder sent", 20*time.Second, func() bool {
		_ = chromedp.Do(ctx, chromedp.Navigate(caseURL))
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#h-sent ~ table a[href*="/sent/"]').length`))
		return err == nil && n > 0
	})
	do("read the letter as sent", chromedp.Click(chromedp.CSS(`#h-sent ~ table a[href*="/sent/"]`)), chromedp.WaitVisible(chromedp.CSS(`pre`)))
	if intro, l := text("main .intro"), text("pre"); !strings.Contains(intro, "come è stata inviata") || !strings.Contains(l, "€") {
		t.Fatalf("the sent letter: %q\n%.800s", intro, l)
	}
	do("back to the queue", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.ID("h-approvals")))
	// The formal notice: an operator may read it but not decide on it.
	do("formal notice as operator", chromedp.Click(chromedp.CSS(`#h-approvals ~ table tr.stage-formal_notice button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`.error`)))
	if e := text(".error"); !strings.Contains(e, "admin") {
		t.Errorf("an operator deciding on a formal notice: %q", e)
	}
	// An admin reads the diffida and approves it.
	do("sign out", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS(`header form button`)), chromedp.Click(chromedp.CSS(`header form button`)), chromedp.WaitVisible(chromedp.ID("token")))
	do("sign in as admin", chromedp.SendKeys(chromedp.ID("token"), tokens["admin"]+"\r"), chromedp.WaitVisible(chromedp.ID("h-approvals")),
		chromedp.Click(chromedp.CSS(`#h-approvals ~ table tr.stage-formal_notice a[href*="/letter"]`)), chromedp.WaitVisible(chromedp.CSS(`pre`)))
	if l := strings.ToLower(text("pre")); !strings.Contains(l, "la diffidiamo formalmente") || !strings.Contains(l, "interessi di mora") || !strings.Contains(text("main table"), "pec") {
		t.Fatalf("the formal notice letter:\n%.2000s", l)
	}
	if dir := os.Getenv("INCASSO_SCREENSHOT_DIR"); dir != "" {
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(dir+"/letter.png", png, 0o644)
		}
	}
	do("approve the notice", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.ID("h-approvals")),
		chromedp.Click(chromedp.CSS(`#h-approvals ~ table tr.stage-formal_notice button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if f := text(".flash"); !strings.Contains(f, "approve") || count(`#h-approvals ~ table tr.stage-formal_notice`) != 0 {
		t.Fatalf("approving the formal notice of %s: %q", formalInvoice, f)
	}
	// Filter the cases: at least 60 days late, sorted by amount.
	do("filter", chromedp.Navigate(base+"/console/cases"), chromedp.WaitVisible(chromedp.ID("f-days")),
		chromedp.SendKeys(chromedp.ID("f-days"), "60"), chromedp.SetValue(chromedp.ID("f-sort"), "-amount"),
		chromedp.Click(chromedp.CSS(`form.filters button[type=submit]`)))
	waitFor(t, "the filtered page", 10*time.Second, func() bool { // the click navigates: wait for the new page
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`location.search.includes('min_days=60') && document.readyState === 'complete'`))
		return err == nil && v
	})
	do("filtered table", chromedp.WaitVisible(chromedp.CSS(`tfoot`)))
	days, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('tbody tr td:nth-child(8)')).map(td => td.textContent)`))
	if err != nil || len(days) == 0 {
		t.Fatalf("filtered list: %v %v", days, err)
	}
	for _, d := range days {
		var n int
		fmt.Sscan(d, &n)
		if n < 60 {
			t.Errorf("filter min_days=60 shows a case %d days late", n)
		}
	}
	a11y(t, ctx, "cases")
	if dir := os.Getenv("INCASSO_SCREENSHOT_DIR"); dir != "" {
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(dir+"/cases.png", png, 0o644)
		}
	}
	// Pause a whole client.
	do("open a client", chromedp.Click(chromedp.CSS(`tbody tr:first-child td:nth-child(4) a`)), chromedp.WaitVisible(chromedp.ID("pc-until")))
	until := time.Now().AddDate(0, 0, 20).Format("2006-01-02")
	if dir := os.Getenv("INCASSO_SCREENSHOT_DIR"); dir != "" {
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(dir+"/client.png", png, 0o644)
		}
	}
	do("pause the client", chromedp.SetValue(chromedp.ID("pc-until"), until), chromedp.SendKeys(chromedp.ID("pc-reason"), "accordo di rientro"),
		chromedp.Click(chromedp.CSS(`form[action$="/pause"] button`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if m := text("main"); !strings.Contains(m, "paused") || !strings.Contains(m, "sospesa") {
		t.Fatalf("client after pause:\n%.1500s", m)
	}
	// The aging chart.
	do("reports", chromedp.Navigate(base+"/console/reports"), chromedp.WaitVisible(chromedp.ID("aging-chart")))
	if bars, m := count(`#aging-chart rect`), text("main"); bars != 5 || !strings.Contains(m, "DSO") || !strings.Contains(m, "Invii dei prossimi 14 giorni") {
		t.Fatalf("reports: %d bars\n%.1500s", bars, m)
	}
	a11y(t, ctx, "reports")
	shot := func(name string) {
		if dir := os.Getenv("INCASSO_SCREENSHOT_DIR"); dir != "" {
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err == nil {
				_ = os.WriteFile(dir+"/"+name+".png", png, 0o644)
			}
		}
	}
	shot("reports")
	// English on request.
	do("english", chromedp.Navigate(base+"/console/?lang=en"), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
	if h := text("main h1"); h != "Today's work" {
		t.Errorf("English title %q", h)
	}
	if p := os.Getenv("INCASSO_SCREENSHOT"); p != "" {
		do("back to Italian", chromedp.Navigate(base+"/console/?lang=it"), chromedp.WaitVisible(chromedp.ID("h-approvals")))
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// a11y is a smoke check: every visible input, select and textarea has a
// label (a <label for>, aria-label or aria-labelledby), every button has a
// name, the page has one h1 and a lang.
func a11y(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	unlabeled, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('input:not([type=hidden]),select,textarea')).filter(e =>
		!(e.id && document.querySelector('label[for="'+e.id+'"]')) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')).map(e => e.outerHTML.slice(0,120))
		.concat(Array.from(document.querySelectorAll('button')).filter(b => !b.textContent.trim() && !b.getAttribute('aria-label')).map(b => b.outerHTML.slice(0,120)))`))
	if err != nil {
		t.Fatalf("%s: a11y: %v", page, err)
	}
	h1, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('h1').length`))
	lang, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.lang`))
	if len(unlabeled) > 0 || h1 != 1 || lang == "" {
		t.Errorf("%s: %d unlabelled controls %v, %d h1, lang %q", page, len(unlabeled), unlabeled, h1, lang)
	}
}

// An operator may approve a catch-up reminder but not a formal step, nor
// write off: those are an admin's, in the console as in the API.
func TestConsoleFormalStepsNeedAnAdmin(t *testing.T) {
	base, tokens, cid := consoleService(t)
	ctx := context.Background()
	shared := Config{OpsURL: base, OpsToken: "shared-ops-token-0123"}
	out, _ := opsCall(ctx, shared, "GET", "/v1/cases", nil)
	var id string
	for _, c := range asList(out["cases"]) {
		m := c.(map[string]any)
		if m["awaiting_approval"] == nil && m["state"] == "active" {
			id = num(m["invoice_id"])
			break
		}
	}
	if id == "" {
		t.Fatal("no active case without an approval")
	}
	op, csrf := signIn(t, base, tokens["operator"])
	op.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := op.PostForm(fmt.Sprintf("%s/console/cases/%d/%s/act", base, cid, id), url.Values{"csrf": {csrf}, "action": {"writeoff"}, "reason": {"irrecuperabile"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("an operator wrote off: %d", resp.StatusCode)
	}
	admin, acsrf := signIn(t, base, tokens["admin"])
	admin.CheckRedirect = op.CheckRedirect
	resp, _ = admin.PostForm(fmt.Sprintf("%s/console/cases/%d/%s/act", base, cid, id), url.Values{"csrf": {acsrf}, "action": {"writeoff"}, "reason": {"irrecuperabile"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("an admin could not write off: %d", resp.StatusCode)
	}
	// The audit names the admin.
	show, _ := opsCall(ctx, shared, "GET", fmt.Sprintf("/v1/cases/%d/%s", cid, id), nil)
	found := false
	for _, e := range asList(show["timeline"]) {
		if e.(map[string]any)["operator"] == "Giulia admin" {
			found = true
		}
	}
	if !found {
		t.Errorf("the write-off is not audited with the signed-in admin: %v", show["timeline"])
	}
}

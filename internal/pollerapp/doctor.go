package pollerapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/fic/filter"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natsrv"
	"github.com/incasso-io/incasso/internal/tenant"
)

// doctor checks, read-only and in about ten requests, what FIC's
// documentation leaves open for this account, and says which settings to
// use. It uses the poller's credentials: FIC_ACCESS_TOKEN, or the first
// OAuth connection stored by `poller connect`.
func doctor(ctx context.Context, cfg Config, out io.Writer) error {
	client, cid, err := doctorClient(ctx, cfg)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tWHAT IT MEANS")
	fails := 0
	row := func(check, result, detail string) {
		if result == "FAIL" {
			fails++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", check, result, detail)
	}
	companies, err := client.ListUserCompanies(ctx)
	switch {
	case err != nil:
		row("companies", "FAIL", fmt.Sprintf("GET /user/companies: %v", err))
		return flush(tw, fails)
	case cid == 0 && len(companies) > 0:
		cid = companies[0].ID
	}
	found := false
	for _, c := range companies {
		found = found || c.ID == cid
	}
	if !found {
		row("companies", "FAIL", fmt.Sprintf("company %d is not among the %d the credentials reach", cid, len(companies)))
		return flush(tw, fails)
	}
	row("companies", "OK", fmt.Sprintf("%d reachable; checking company %d", len(companies), cid))

	page, err := client.ListPage(ctx, cid, fic.ListOptions{Type: fic.TypeInvoice, PerPage: 5}, 1)
	if err != nil {
		row("list invoices", "FAIL", fmt.Sprintf("detailed list sorted by id: %v", err))
		return flush(tw, fails)
	}
	detail := fmt.Sprintf("%d invoices in %d pages of 5; pagination from current_page/last_page", page.Total, page.LastPage)
	result := "OK"
	if len(page.Errors) > 0 {
		result, detail = "WARN", fmt.Sprintf("%d of %d documents could not be read: %v", len(page.Errors), len(page.Documents)+len(page.Errors), page.Errors[0])
	}
	row("list invoices", result, detail)
	withPayments := 0
	for _, d := range page.Documents {
		if len(d.PaymentsList) > 0 {
			withPayments++
		}
	}
	if len(page.Documents) > 0 && withPayments == 0 {
		row("installments", "FAIL", "no payments_list in the detailed list: amounts due cannot be computed")
	} else {
		row("installments", "OK", fmt.Sprintf("payments_list on %d of %d documents", withPayments, len(page.Documents)))
	}

	try := func(check string, q filter.Expr, ok, refused string) {
		_, err := client.ListPage(ctx, cid, fic.ListOptions{Type: fic.TypeInvoice, PerPage: 5, Query: q}, 1)
		var apiErr *fic.APIError
		switch {
		case err == nil:
			row(check, "OK", ok)
		case errors.As(err, &apiErr) && (apiErr.Status == 400 || apiErr.Status == 422):
			row(check, "WARN", refused+fmt.Sprintf(" (FIC said: %s)", apiErr.Message))
		default:
			row(check, "FAIL", err.Error())
		}
	}
	try("filter next_due_date", filter.Where("next_due_date", filter.IsNotNull, nil),
		"accepted: POLLER_OPEN_ONLY=true can scan open invoices only", "refused: keep POLLER_OPEN_ONLY=false")
	try("filter updated_at", filter.Where("updated_at", filter.Gt, "2000-01-01 00:00:00"),
		"accepted (informational: scans do not rely on it)", "refused: FIC does not filter on updated_at here")

	if len(page.Documents) > 0 {
		u, err := url.Parse(page.Documents[0].URL)
		switch {
		case page.Documents[0].URL == "":
			row("invoice PDF links", "WARN", "documents carry no url: letters go without the PDF")
		case err != nil || !u.IsAbs():
			row("invoice PDF links", "WARN", fmt.Sprintf("url %q is not a link: letters go without the PDF", page.Documents[0].URL))
		default:
			row("invoice PDF links", "OK", "absolute links on "+u.Host+": attach_invoice_pdf works")
		}
	}
	var clientID int64
	for _, d := range page.Documents {
		if d.Entity != nil && d.Entity.ID != nil {
			clientID = *d.Entity.ID
			break
		}
	}
	if clientID != 0 {
		cl, err := client.GetClient(ctx, cid, clientID)
		var apiErr *fic.APIError
		switch {
		case err == nil && cl.Email == "" && cl.PEC == "":
			row("client contacts", "OK", fmt.Sprintf("client %d read; it has no e-mail or PEC in FIC", clientID))
		case err == nil:
			row("client contacts", "OK", fmt.Sprintf("client %d read: reminders use today's e-mail and PEC", clientID))
		case errors.As(err, &apiErr) && apiErr.Status == 403:
			row("client contacts", "WARN", "no entity.clients:r permission: reminders use the invoices' copy of the contacts")
		default:
			row("client contacts", "WARN", err.Error()+": reminders use the invoices' copy of the contacts")
		}
	}
	accounts, err := client.ListPaymentAccounts(ctx, cid)
	iban := ""
	for _, a := range accounts {
		if a.Type == "bank" && a.IBAN != "" && iban == "" {
			iban = string(a.IBAN)
		}
	}
	switch {
	case err != nil:
		row("payment accounts", "WARN", fmt.Sprintf("%v: set creditor.iban in the policy", err))
	case iban == "":
		row("payment accounts", "WARN", "no bank account with an IBAN: set creditor.iban in the policy")
	default:
		row("payment accounts", "OK", "letters show "+iban[:min(4, len(iban))]+"… (override with creditor.iban)")
	}
	subs, err := client.ListSubscriptions(ctx, cid)
	switch {
	case err != nil:
		row("webhook subscription", "WARN", fmt.Sprintf("%v: scans reconcile without webhooks", err))
	case len(subs) == 0:
		row("webhook subscription", "WARN", "none yet: set POLLER_PUBLIC_URL (https) and the poller creates it")
	default:
		state := "verified"
		if !subs[0].Verified {
			state = "NOT verified (the poller asks FIC to verify it again, 5 times at most)"
		}
		row("webhook subscription", "OK", fmt.Sprintf("%s → %s, %s", subs[0].ID, subs[0].Sink, state))
	}
	q := client.Quota(cid)
	if q.HourlyRemaining >= 0 || q.MonthlyRemaining >= 0 {
		row("quota headers", "OK", fmt.Sprintf("hourly %d of %d left, monthly %d of %d", q.HourlyRemaining, q.HourlyLimit, q.MonthlyRemaining, q.MonthlyLimit))
	} else {
		row("quota headers", "WARN", "FIC sent no RateLimit-* headers: the budget uses FIC_HOURLY_LIMIT and FIC_MONTHLY_LIMIT")
	}
	return flush(tw, fails)
}

func flush(tw *tabwriter.Writer, fails int) error {
	if err := tw.Flush(); err != nil {
		return err
	}
	if fails > 0 {
		return fmt.Errorf("doctor: %d check(s) failed", fails)
	}
	return nil
}

// doctorClient is a FIC client with the poller's credentials.
func doctorClient(ctx context.Context, cfg Config) (*fic.Client, int64, error) {
	fc := fic.Config{BaseURL: cfg.FICBaseURL, Quotas: fic.NewQuotas(cfg.FICLimits, nil)}
	if cfg.FICAccessToken != "" {
		c, err := fic.New(fc, fic.StaticToken(cfg.FICAccessToken))
		return c, cfg.FICCompanyID, err
	}
	key, err := kvstore.ParseSecretKey(cfg.SecretKey)
	if err != nil {
		return nil, 0, fmt.Errorf("doctor: FIC_ACCESS_TOKEN, or INCASSO_SECRET_KEY and a connection from `poller connect`: %w", err)
	}
	nc, err := natsrv.Open(ctx, cfg.natsOpen("incasso-doctor"))
	if err != nil {
		return nil, 0, err
	}
	tokens, err := kvstore.NewTokens(ctx, nc.JS, key, kvstore.BucketConfig{Replicas: cfg.Replicas})
	if err != nil {
		return nil, 0, err
	}
	names, err := tokens.Connections(ctx)
	if err != nil || len(names) == 0 {
		return nil, 0, fmt.Errorf("doctor: no stored connection (run `poller connect` first): %v", err)
	}
	leases, err := kvstore.OpenLeases(ctx, nc.JS, "doctor", kvstore.BucketConfig{Replicas: cfg.Replicas})
	if err != nil {
		return nil, 0, err
	}
	oauth := fic.NewOAuth(cfg.FICBaseURL, cfg.FICClientID, cfg.FICClientSecret, cfg.FICRedirectURL, scopes(cfg))
	oauth.FormBody = !cfg.FICTokenJSON
	conn, _, _ := tokens.Get(ctx, names[0])
	var cid int64
	if len(conn.Companies) > 0 {
		cid = conn.Companies[0]
	}
	c, err := fic.New(fc, &tenant.Credentials{OAuth: oauth, Store: tokens, Lock: leases, Key: names[0]})
	return c, cid, err
}

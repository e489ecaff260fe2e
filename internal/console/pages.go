package console

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/notify"
	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// row is a case as the lists show it.
type row struct {
	C           *dunning.Case
	Key         string // cid/id
	NextStage   string
	DaysLate    int
	Due         decimal.Decimal // the late installments, less credits
	Outstanding decimal.Decimal
	Formal      bool // the next stage is a formal step
}

func (c *Console) row(cs *dunning.Case, today rcv.Date) row {
	p := c.Engine.Policies.For(cs.CompanyID)
	r := row{C: cs, Key: fmt.Sprintf("%d/%d", cs.CompanyID, cs.InvoiceID), DaysLate: cs.Invoice.DaysOverdue(today),
		Due: dunning.DemandOn(cs, today, false, c.Engine.Calendar).Total, Outstanding: cs.Outstanding()}
	if cs.Stage < len(p.Stages) {
		s := p.Stages[cs.Stage]
		r.NextStage, r.Formal = s.Name, s.Formal()
	}
	return r
}

// queue is the work queue: what needs a person today.
func (c *Console) queue(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	today := rcv.DateIn(c.now(), rcv.Rome)
	approvals, err := c.Engine.Approvals(ctx, 0)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, err)
		return
	}
	all, err := c.Engine.Cases.List(ctx, 0)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, err)
		return
	}
	var ap, attention, held, disputes, promises []row
	for i := range approvals {
		ap = append(ap, c.row(&approvals[i], today))
	}
	for i := range all {
		cs := &all[i]
		switch {
		case len(cs.Attention) > 0:
			attention = append(attention, c.row(cs, today))
		}
		switch cs.State {
		case dunning.Held:
			held = append(held, c.row(cs, today))
		case dunning.Disputed:
			disputes = append(disputes, c.row(cs, today))
		case dunning.Promised:
			if !cs.Until.After(today) {
				promises = append(promises, c.row(cs, today))
			}
		}
	}
	byLate := func(a, b row) int { return cmp.Compare(b.DaysLate, a.DaysLate) }
	for _, l := range [][]row{ap, attention, held, disputes, promises} {
		slices.SortStableFunc(l, byLate)
	}
	c.render(w, r, "queue", map[string]any{"Approvals": ap, "Attention": attention, "Held": held, "Disputes": disputes, "Promises": promises,
		"Empty": len(ap)+len(attention)+len(held)+len(disputes)+len(promises) == 0})
}

// filter is the cases page's query.
type filter struct {
	Company              int64
	Client, State, Stage string
	MinDays              int
	MinAmount            decimal.Decimal
	NextBefore           rcv.Date
	Assignee, Sort       string
	Raw                  url.Values
}

func parseFilter(q url.Values) (filter, error) {
	f := filter{Client: strings.TrimSpace(q.Get("client")), State: q.Get("state"), Stage: q.Get("stage"), Assignee: q.Get("assignee"), Sort: q.Get("sort"), MinDays: -1, Raw: q}
	var err error
	if v := q.Get("company"); v != "" {
		if f.Company, err = strconv.ParseInt(v, 10, 64); err != nil || f.Company <= 0 {
			return f, errors.New("company: a company id")
		}
	}
	if v := q.Get("min_days"); v != "" {
		if f.MinDays, err = strconv.Atoi(v); err != nil || f.MinDays < 0 {
			return f, errors.New("days overdue: a number from 0")
		}
	}
	if v := strings.ReplaceAll(strings.TrimSpace(q.Get("min_amount")), ",", "."); v != "" {
		if f.MinAmount, err = decimal.NewFromString(v); err != nil {
			return f, errors.New("amount: a number, e.g. 1000,00")
		}
	}
	if v := q.Get("next_before"); v != "" {
		if f.NextBefore, err = rcv.ParseDate(v); err != nil {
			return f, errors.New("next action before: a date")
		}
	}
	switch dunning.State(f.State) {
	case "", dunning.Active, dunning.Escalated, dunning.Paused, dunning.Disputed, dunning.Promised, dunning.Held, dunning.Closed:
	default:
		return f, errors.New("state: unknown")
	}
	return f, nil
}

// list applies the filter and the sort.
func (c *Console) list(r *http.Request, f filter) ([]row, error) {
	all, err := c.Engine.Cases.List(r.Context(), f.Company)
	if err != nil {
		return nil, err
	}
	today := rcv.DateIn(c.now(), rcv.Rome)
	var out []row
	for i := range all {
		x := c.row(&all[i], today)
		cs := x.C
		if f.State == "" && cs.State == dunning.Closed {
			continue // closed cases only when asked for
		}
		if (f.State != "" && string(cs.State) != f.State) || (f.Stage != "" && x.NextStage != f.Stage) || (f.MinDays >= 0 && x.DaysLate < f.MinDays) ||
			(!f.MinAmount.IsZero() && x.Due.LessThan(f.MinAmount)) || (f.Assignee != "" && cs.Assignee != f.Assignee) ||
			(f.Client != "" && !strings.Contains(strings.ToLower(cs.Invoice.Client.Name), strings.ToLower(f.Client))) ||
			(!f.NextBefore.IsZero() && (cs.WakeAt.IsZero() || !rcv.DateIn(cs.WakeAt, rcv.Rome).Before(f.NextBefore))) {
			continue
		}
		out = append(out, x)
	}
	desc := strings.HasPrefix(f.Sort, "-")
	key := strings.TrimPrefix(f.Sort, "-")
	slices.SortStableFunc(out, func(a, b row) int {
		var n int
		switch key {
		case "amount":
			n = a.Due.Cmp(b.Due)
		case "next":
			n = a.C.WakeAt.Compare(b.C.WakeAt)
		case "client":
			n = strings.Compare(a.C.Invoice.Client.Name, b.C.Invoice.Client.Name)
		case "company":
			n = cmp.Compare(a.C.CompanyID, b.C.CompanyID)
		default: // days late, most first
			n = cmp.Compare(b.DaysLate, a.DaysLate)
		}
		if desc {
			n = -n
		}
		if n == 0 {
			n = b.Due.Cmp(a.Due)
		}
		return n
	})
	return out, nil
}

// filtered reads the query's filter and lists its cases; false: answered.
func (c *Console) filtered(w http.ResponseWriter, r *http.Request) (filter, []row, bool) {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return f, nil, false
	}
	rows, err := c.list(r, f)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, err)
		return f, nil, false
	}
	return f, rows, true
}

func (c *Console) cases(w http.ResponseWriter, r *http.Request) {
	f, rows, ok := c.filtered(w, r)
	if !ok {
		return
	}
	due, out := decimal.Zero, decimal.Zero
	for _, x := range rows {
		due, out = due.Add(x.Due), out.Add(x.Outstanding)
	}
	stages := []string{}
	for _, s := range c.Engine.Policies.Default.Stages {
		stages = append(stages, s.Name)
	}
	csv := *r.URL
	csv.Path = prefix + "/cases.csv"
	c.render(w, r, "cases", map[string]any{"Rows": rows, "F": f, "TotalDue": due, "TotalOutstanding": out, "Stages": stages,
		"States": []string{"active", "escalated", "paused", "disputed", "promised", "held", "closed"}, "CSV": csv.RequestURI()})
}

// casesCSV exports the filtered cases (amounts with a dot, dates ISO, so a
// spreadsheet reads them in any locale).
func (c *Console) casesCSV(w http.ResponseWriter, r *http.Request) {
	_, rows, ok := c.filtered(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="incasso-cases-`+rcv.DateIn(c.now(), rcv.Rome).String()+`.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"company_id", "invoice_id", "number", "date", "client", "vat_number", "state", "next_stage", "next_action", "days_late", "amount_due", "outstanding", "assignee"})
	for _, x := range rows {
		next := ""
		if !x.C.WakeAt.IsZero() {
			next = x.C.WakeAt.In(rcv.Rome).Format("2006-01-02 15:04")
		}
		_ = cw.Write([]string{strconv.FormatInt(x.C.CompanyID, 10), strconv.FormatInt(x.C.InvoiceID, 10), x.C.Invoice.Number, x.C.Invoice.Date.String(),
			csvSafe(x.C.Invoice.Client.Name), x.C.Invoice.Client.VATNumber, string(x.C.State), x.NextStage, next, strconv.Itoa(x.DaysLate),
			x.Due.StringFixed(2), x.Outstanding.StringFixed(2), csvSafe(x.C.Assignee)})
	}
	cw.Flush()
}

// csvSafe defuses a cell a spreadsheet would run as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// pathIDs reads {cid} and the id in the path's second wildcard (the
// invoice's {id} or the {client}).
func pathIDs(r *http.Request) (int64, int64, error) {
	second := "id"
	if r.PathValue("client") != "" {
		second = "client"
	}
	cid, err1 := strconv.ParseInt(r.PathValue("cid"), 10, 64)
	id, err2 := strconv.ParseInt(r.PathValue(second), 10, 64)
	if err1 != nil || err2 != nil || cid <= 0 || id <= 0 {
		return 0, 0, errors.New("company and invoice ids are positive integers")
	}
	return cid, id, nil
}

func (c *Console) casePage(w http.ResponseWriter, r *http.Request) {
	cid, id, err := pathIDs(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	cs, rev, err := c.Engine.Cases.Get(r.Context(), cid, id)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, err)
		return
	}
	if rev == 0 {
		c.fail(w, r, http.StatusNotFound, dunning.ErrNoCase)
		return
	}
	tl, err := c.Engine.Audit.Timeline(r.Context(), cid, id)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, err)
		return
	}
	slices.SortStableFunc(tl, func(a, b dunning.AuditEntry) int { return a.At.Compare(b.At) })
	today := rcv.DateIn(c.now(), rcv.Rome)
	p := c.Engine.Policies.For(cid)
	var stages []string
	for _, s := range p.Stages {
		stages = append(stages, s.Name)
	}
	c.render(w, r, "case", map[string]any{"R": c.row(&cs, today), "C": &cs, "Timeline": tl, "Demand": dunning.DemandOn(&cs, today, false, c.Engine.Calendar),
		"Stages": stages, "Policy": p})
}

// draft renders the letter a stage would send today; false: answered.
func (c *Console) draft(w http.ResponseWriter, r *http.Request) (dunning.Message, notify.Rendered, int64, int64, bool) {
	cid, id, err := pathIDs(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return dunning.Message{}, notify.Rendered{}, 0, 0, false
	}
	m, err := c.Engine.Draft(r.Context(), cid, id, r.URL.Query().Get("stage"), policy.Channel(r.URL.Query().Get("channel")))
	if err != nil {
		c.fail(w, r, statusOf(err), err)
		return m, notify.Rendered{}, 0, 0, false
	}
	out, err := c.Letters.Render(m)
	if err != nil {
		c.fail(w, r, http.StatusUnprocessableEntity, err)
		return m, out, 0, 0, false
	}
	return m, out, cid, id, true
}

// letter shows the letter a stage would send today, rendered as the client
// would read it.
func (c *Console) letter(w http.ResponseWriter, r *http.Request) {
	if m, out, cid, id, ok := c.draft(w, r); ok {
		to := m.Client.Email
		if m.Channel == policy.PEC {
			to = m.Client.PEC
		}
		c.render(w, r, "letter", map[string]any{"Stage": m.Stage, "Channel": m.Channel, "To": m.Client.Name + " <" + to + ">", "Subject": out.Subject,
			"Text": out.Text, "HasHTML": out.HTML != "", "HTMLSrc": fmt.Sprintf("%s/cases/%d/%d/letter.html?%s", prefix, cid, id, r.URL.RawQuery), "CID": cid, "ID": id})
	}
}

func (c *Console) letterHTML(w http.ResponseWriter, r *http.Request) {
	if _, out, _, _, ok := c.draft(w, r); ok {
		// The letter's HTML in a sandboxed frame: it may style itself, nothing else.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(out.HTML))
	}
}

// sent shows a letter as it went out (the archive), or says it was not
// kept (sent before the archive existed, or not by e-mail).
func (c *Console) sent(w http.ResponseWriter, r *http.Request) {
	cid, id, err := pathIDs(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	if c.Letters == nil || c.Archive == nil {
		c.fail(w, r, http.StatusNotFound, errors.New("letters are not archived here"))
		return
	}
	l, ok, err := c.Archive.Get(r.Context(), r.PathValue("msg"), r.PathValue("ch"))
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, err)
		return
	}
	if !ok {
		c.fail(w, r, http.StatusNotFound, errors.New("this letter was not kept (sent before letters were archived, or not by e-mail or PEC)"))
		return
	}
	if r.URL.Query().Get("part") == "html" {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(l.HTML))
		return
	}
	c.render(w, r, "letter", map[string]any{"Archived": true, "At": l.At, "Stage": r.URL.Query().Get("stage"), "Channel": l.Channel, "To": l.To, "Subject": l.Subject,
		"Text": l.Text, "HasHTML": l.HTML != "", "HTMLSrc": r.URL.Path + "?part=html", "CID": cid, "ID": id})
}

var errForbidden = errors.New("forbidden")

func statusOf(err error) int {
	switch {
	case errors.Is(err, errForbidden):
		return http.StatusForbidden
	case errors.Is(err, dunning.ErrNoCase):
		return http.StatusNotFound
	case errors.Is(err, dunning.ErrInvalid):
		return http.StatusUnprocessableEntity
	}
	return http.StatusServiceUnavailable
}

// act runs one action on a case, as the signed-in operator, and goes back
// to where the form was.
func (c *Console) act(w http.ResponseWriter, r *http.Request) {
	cid, id, err := pathIDs(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	msg, err := c.do(r, cid, id, r.PostForm.Get("action"))
	if err != nil {
		c.fail(w, r, statusOf(err), err)
		return
	}
	back := safeNext(r.PostForm.Get("back"))
	if back == prefix+"/" && r.PostForm.Get("back") == "" {
		back = fmt.Sprintf("%s/cases/%d/%d", prefix, cid, id)
	}
	goBack(w, r, back, msg)
}

// goBack redirects to back, saying what was done (shown as the flash).
func goBack(w http.ResponseWriter, r *http.Request, back, msg string) {
	sep := "?"
	if strings.Contains(back, "?") {
		sep = "&"
	}
	http.Redirect(w, r, back+sep+"done="+url.QueryEscape(msg), http.StatusSeeOther)
}

// do performs an action; the message says what happened.
func (c *Console) do(r *http.Request, cid, id int64, action string) (string, error) {
	ctx := r.Context()
	me := who(r).actor()
	f := r.PostForm
	reason := clean(f.Get("reason"), 500)
	until := rcv.Date{}
	if v := f.Get("until"); v != "" {
		d, err := rcv.ParseDate(v)
		if err != nil {
			return "", fmt.Errorf("%w: until: %v", dunning.ErrInvalid, err)
		}
		until = d
	}
	switch action {
	case dunning.Approve, dunning.Reject, dunning.Postpone:
		// A formal step (a stage the policy puts behind approval: the
		// notice, the hand-off) is an admin's decision, as in the API.
		if stage, err := c.Engine.AwaitsFormalDecision(ctx, cid, id); err == nil && stage != "" && !c.isAdmin(r) {
			return "", fmt.Errorf("%w: %s is a formal step: deciding on it needs an admin", errForbidden, stage)
		}
		if _, err := c.Engine.DecideApproval(ctx, cid, id, action, until, me, reason); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s: %d/%d", action, cid, id), nil
	case "pause", "resume", "dispute", "promise", "writeoff":
		if action == "writeoff" && !c.isAdmin(r) {
			return "", fmt.Errorf("%w: writing off needs an admin", errForbidden)
		}
		to := map[string]dunning.State{"pause": dunning.Paused, "resume": dunning.Active, "dispute": dunning.Disputed, "promise": dunning.Promised, "writeoff": dunning.Closed}[action]
		if _, err := c.Engine.SetState(ctx, cid, id, to, until, me, reason); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s: %d/%d", action, cid, id), nil
	case "remind":
		n, err := c.Engine.RemindNow(ctx, cid, id, f.Get("stage"), policy.Channel(f.Get("channel")), me, reason)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("remind: %d message(s) sent for %d/%d", n, cid, id), nil
	case "note":
		if err := c.Engine.AddNote(ctx, cid, id, me, clean(f.Get("note"), 2000)); err != nil {
			return "", err
		}
		return "note added", nil
	case "assign":
		if _, err := c.Engine.Assign(ctx, cid, id, clean(f.Get("assignee"), 64), me); err != nil {
			return "", err
		}
		return "assigned", nil
	case "resolve":
		if _, err := c.Engine.Resolve(ctx, cid, id, f.Get("item"), me, clean(f.Get("outcome"), 500)); err != nil {
			return "", err
		}
		return "resolved", nil
	}
	return "", fmt.Errorf("%w: unknown action %q", dunning.ErrInvalid, action)
}

func (c *Console) isAdmin(r *http.Request) bool {
	return who(r).Role == "admin"
}

// bulk applies one action to the selected cases.
func (c *Console) bulk(w http.ResponseWriter, r *http.Request) {
	action := r.PostForm.Get("action")
	switch action {
	case "pause", "resume", "remind", "assign":
	default:
		c.fail(w, r, http.StatusBadRequest, errors.New("bulk: choose pause, resume, remind or assign"))
		return
	}
	sel := r.PostForm["sel"]
	if len(sel) == 0 || len(sel) > 500 {
		c.fail(w, r, http.StatusBadRequest, errors.New("bulk: select from 1 to 500 cases"))
		return
	}
	done, failed := 0, []string{}
	for _, k := range sel {
		a, b, ok := strings.Cut(k, "/")
		cid, err1 := strconv.ParseInt(a, 10, 64)
		id, err2 := strconv.ParseInt(b, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			failed = append(failed, k)
			continue
		}
		if _, err := c.do(r, cid, id, action); err != nil {
			failed = append(failed, fmt.Sprintf("%s (%v)", k, err))
			continue
		}
		done++
	}
	msg := fmt.Sprintf("%s: %d done", action, done)
	if len(failed) > 0 {
		msg += fmt.Sprintf(", %d not: %s", len(failed), strings.Join(failed, "; "))
	}
	goBack(w, r, safeNext(r.PostForm.Get("back")), clean(msg, 200))
}

// clientCases are the cases of the path's client, oldest invoice first;
// false: answered.
func (c *Console) clientCases(w http.ResponseWriter, r *http.Request) (int64, int64, []row, bool) {
	cid, client, err := pathIDs(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return 0, 0, nil, false
	}
	all, err := c.Engine.Cases.List(r.Context(), cid)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, err)
		return 0, 0, nil, false
	}
	today := rcv.DateIn(c.now(), rcv.Rome)
	var out []row
	for i := range all {
		if all[i].Invoice.Client.ID == client {
			out = append(out, c.row(&all[i], today))
		}
	}
	slices.SortStableFunc(out, func(a, b row) int { return a.C.Invoice.Date.Compare(b.C.Invoice.Date) })
	return cid, client, out, true
}

func (c *Console) clientPage(w http.ResponseWriter, r *http.Request) {
	cid, client, rows, ok := c.clientCases(w, r)
	if !ok {
		return
	}
	if len(rows) == 0 {
		c.fail(w, r, http.StatusNotFound, errors.New("no cases for this client"))
		return
	}
	due, out := decimal.Zero, decimal.Zero
	for _, x := range rows {
		if x.C.State != dunning.Closed {
			due, out = due.Add(x.Due), out.Add(x.Outstanding)
		}
	}
	c.render(w, r, "client", map[string]any{"Rows": rows, "Client": rows[len(rows)-1].C.Invoice.Client, "CID": cid, "ClientID": client, "Due": due, "Outstanding": out})
}

// pauseClient pauses every open case of a client until a date.
func (c *Console) pauseClient(w http.ResponseWriter, r *http.Request) {
	cid, client, rows, ok := c.clientCases(w, r)
	if !ok {
		return
	}
	n := 0
	for _, x := range rows {
		switch x.C.State {
		case dunning.Active, dunning.Promised:
			if _, err := c.do(r, cid, x.C.InvoiceID, "pause"); err != nil {
				c.fail(w, r, statusOf(err), err)
				return
			}
			n++
		}
	}
	goBack(w, r, fmt.Sprintf("%s/clients/%d/%d", prefix, cid, client), fmt.Sprintf("paused %d case(s)", n))
}

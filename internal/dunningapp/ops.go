package dunningapp

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// opsAPI is the authenticated operations API. Every request carries a
// bearer token: an operator's own (kvstore.Operators: a name and a role,
// written into the audit trail as who acted), or the shared
// DUNNING_OPS_TOKEN (role admin; the audit says "ops-token" with the name
// the caller declared, which nothing verifies).
type opsAPI struct {
	eng   *dunning.Engine
	token string             // shared token ("": none)
	ops   *kvstore.Operators // nil: shared token only
	now   func() time.Time
	// deadLetters lists the dead-letter stream (nil: none).
	deadLetters func(r *http.Request, limit int) ([]map[string]any, error)
	// endpoints is HTTP delivery's admin API (nil: none).
	endpoints *endpointsAPI
}

func (a *opsAPI) handler() http.Handler {
	mux := http.NewServeMux()
	view, act, admin := kvstore.RoleViewer, kvstore.RoleOperator, kvstore.RoleAdmin
	route := func(pattern, role string, h http.HandlerFunc) { mux.Handle(pattern, a.require(role, h)) }
	route("GET /v1/cases", view, a.list)
	route("GET /v1/cases/{cid}/{id}", view, a.show)
	route("POST /v1/cases/{cid}/{id}/remind", act, a.remind)
	route("POST /v1/cases/{cid}/{id}/approve", act, a.approval(dunning.Approve))
	route("POST /v1/cases/{cid}/{id}/reject", act, a.approval(dunning.Reject))
	route("POST /v1/cases/{cid}/{id}/postpone", act, a.approval(dunning.Postpone))
	route("POST /v1/cases/{cid}/{id}/writeoff", admin, a.state)
	route("POST /v1/cases/{cid}/{id}/{action}", act, a.state)
	route("GET /v1/approvals", view, a.approvals)
	route("GET /v1/companies/{cid}/mode", view, a.getMode)
	route("PUT /v1/companies/{cid}/mode", admin, a.setMode)
	route("GET /v1/preview", view, a.preview)
	route("GET /v1/aging", view, a.aging)
	route("GET /v1/deadletters", view, a.deadletters)
	if a.endpoints != nil {
		a.endpoints.routes(route)
	}
	route("GET /v1/whoami", view, func(w http.ResponseWriter, r *http.Request) {
		p := principalOf(r)
		writeJSON(w, http.StatusOK, map[string]any{"name": p.Name, "role": p.Role, "shared_token": p.Shared})
	})
	return a.auth(mux)
}

// principal is who a request comes from.
type principal struct {
	Name   string
	Role   string
	Shared bool // the shared DUNNING_OPS_TOKEN: the name is not verified
}

type principalKey struct{}

func principalOf(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

// auth: 401 without a bearer token, 403 with one that is not an active
// operator's nor the shared token.
func (a *opsAPI) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="incasso-dunning"`)
			apiError(w, http.StatusUnauthorized, "missing bearer token")
			return
		}
		var p principal
		switch {
		case a.token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.token)) == 1:
			p = principal{Name: "ops-token", Role: kvstore.RoleAdmin, Shared: true}
		case a.ops != nil && strings.HasPrefix(tok, kvstore.TokenPrefix):
			op, err := a.ops.Authenticate(r.Context(), tok)
			if errors.Is(err, kvstore.ErrBadToken) {
				apiError(w, http.StatusForbidden, "invalid token")
				return
			}
			if err != nil {
				apiError(w, http.StatusServiceUnavailable, "cannot check the token now")
				return
			}
			p = principal{Name: op.Name, Role: op.Role}
		default:
			apiError(w, http.StatusForbidden, "invalid token")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// require answers 403 unless the principal's role reaches role.
func (a *opsAPI) require(role string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := principalOf(r); kvstore.Rank(p.Role) < kvstore.Rank(role) {
			apiError(w, http.StatusForbidden, fmt.Sprintf("%s is %s; this needs %s", p.Name, p.Role, role))
			return
		}
		h(w, r)
	})
}

// actor is who the audit trail records: the authenticated operator, or
// for the shared token "ops-token" and the name the caller declared.
func actor(r *http.Request, declared string) string {
	p := principalOf(r)
	if !p.Shared {
		return p.Name
	}
	if declared = clean(declared, 64); declared != "" {
		return "ops-token (as " + declared + ")"
	}
	return "ops-token"
}

// clean makes free text safe to store and print: control and bidi
// characters dropped (no terminal escapes, no reordered text in `dunning
// show`), spaces collapsed, at most max runes.
func clean(s string, max int) string {
	var b strings.Builder
	n := 0
	space := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r): // newlines and tabs too: one line in the timeline
			space = b.Len() > 0
			continue
		case unicode.IsControl(r), r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F, r == utf8.RuneError:
			continue
		}
		if n >= max {
			break
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func engineError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, dunning.ErrNoCase):
		apiError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, dunning.ErrInvalid):
		apiError(w, http.StatusUnprocessableEntity, err.Error())
	default:
		apiError(w, http.StatusInternalServerError, err.Error())
	}
}

// optionalCompany is the ?company= filter (0: every company).
func optionalCompany(w http.ResponseWriter, r *http.Request) (int64, bool) {
	v := r.URL.Query().Get("company")
	if v == "" {
		return 0, true
	}
	cid, err := strconv.ParseInt(v, 10, 64)
	if err != nil || cid <= 0 {
		apiError(w, http.StatusBadRequest, "company: want a positive integer")
		return 0, false
	}
	return cid, true
}

// pathCompany is the {cid} of the path.
func pathCompany(w http.ResponseWriter, r *http.Request) (int64, bool) {
	cid, err := strconv.ParseInt(r.PathValue("cid"), 10, 64)
	if err != nil || cid <= 0 {
		apiError(w, http.StatusBadRequest, "company id must be a positive integer")
		return 0, false
	}
	return cid, true
}

func ids(w http.ResponseWriter, r *http.Request) (int64, int64, bool) {
	cid, err1 := strconv.ParseInt(r.PathValue("cid"), 10, 64)
	id, err2 := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err1 != nil || err2 != nil || cid <= 0 || id <= 0 {
		apiError(w, http.StatusBadRequest, "company and invoice ids must be positive integers")
		return 0, 0, false
	}
	return cid, id, true
}

func (a *opsAPI) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cid, ok := optionalCompany(w, r)
	if !ok {
		return
	}
	minDays := -1
	if v := q.Get("min_days_overdue"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			apiError(w, http.StatusBadRequest, "min_days_overdue: want a non-negative integer")
			return
		}
		minDays = n
	}
	state, stage := q.Get("state"), q.Get("stage")
	switch dunning.State(state) {
	case "", dunning.Active, dunning.Escalated, dunning.Paused, dunning.Disputed, dunning.Promised, dunning.Held, dunning.Closed:
	default:
		apiError(w, http.StatusBadRequest, "state: want active, escalated, paused, disputed, promised, held or closed")
		return
	}
	cases, err := a.eng.Cases.List(r.Context(), cid)
	if err != nil {
		engineError(w, err)
		return
	}
	today := rcv.DateIn(a.now(), rcv.Rome)
	out := []map[string]any{}
	for _, c := range cases {
		days := c.Invoice.DaysOverdue(today)
		p := a.eng.Policies.For(c.CompanyID)
		next := ""
		if c.Stage < len(p.Stages) {
			next = p.Stages[c.Stage].Name
		}
		if (state != "" && string(c.State) != state) || (stage != "" && next != stage) || (minDays >= 0 && days < minDays) {
			continue
		}
		out = append(out, caseRow(&c, next, days, a.eng, today))
	}
	writeJSON(w, http.StatusOK, map[string]any{"cases": out})
}

func (a *opsAPI) show(w http.ResponseWriter, r *http.Request) {
	cid, id, ok := ids(w, r)
	if !ok {
		return
	}
	c, rev, err := a.eng.Cases.Get(r.Context(), cid, id)
	if err != nil {
		engineError(w, err)
		return
	}
	if rev == 0 {
		engineError(w, dunning.ErrNoCase)
		return
	}
	tl, err := a.eng.Audit.Timeline(r.Context(), cid, id)
	if err != nil {
		engineError(w, err)
		return
	}
	slices.SortStableFunc(tl, func(x, y dunning.AuditEntry) int { return x.At.Compare(y.At) })
	today := rcv.DateIn(a.now(), rcv.Rome)
	p := a.eng.Policies.For(cid)
	next := ""
	if c.Stage < len(p.Stages) {
		next = p.Stages[c.Stage].Name
	}
	writeJSON(w, http.StatusOK, map[string]any{"case": c, "timeline": tl, "summary": caseRow(&c, next, c.Invoice.DaysOverdue(today), a.eng, today)})
}

type opRequest struct {
	Operator string `json:"operator"`
	Reason   string `json:"reason"`
	Until    string `json:"until"`
	Stage    string `json:"stage"`
	Channel  string `json:"channel"`
}

func decodeOp(w http.ResponseWriter, r *http.Request) (opRequest, bool) {
	var req opRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return req, false
	}
	if principalOf(r).Shared && clean(req.Operator, 64) == "" {
		apiError(w, http.StatusBadRequest, "operator is required with the shared token (who is acting); personal tokens name their operator")
		return req, false
	}
	req.Operator, req.Reason = actor(r, req.Operator), clean(req.Reason, 500)
	return req, true
}

// decodeOpUntil is decodeOp with its optional until date parsed.
func decodeOpUntil(w http.ResponseWriter, r *http.Request) (opRequest, rcv.Date, bool) {
	req, ok := decodeOp(w, r)
	if !ok || req.Until == "" {
		return req, rcv.Date{}, ok
	}
	d, err := rcv.ParseDate(req.Until)
	if err != nil {
		apiError(w, http.StatusBadRequest, "until: "+err.Error())
		return req, rcv.Date{}, false
	}
	return req, d, true
}

func (a *opsAPI) remind(w http.ResponseWriter, r *http.Request) {
	cid, id, ok := ids(w, r)
	if !ok {
		return
	}
	req, ok := decodeOp(w, r)
	if !ok {
		return
	}
	known := 0
	if c, _, err := a.eng.Cases.Get(r.Context(), cid, id); err == nil {
		known = len(c.Sent)
	}
	n, err := a.eng.RemindNow(r.Context(), cid, id, req.Stage, policy.Channel(req.Channel), req.Operator, req.Reason)
	if err != nil {
		engineError(w, err)
		return
	}
	// What went where: the deliveries this request recorded.
	out := map[string]any{"messages_sent": n, "deliveries": []map[string]any{}}
	if c, rev, err := a.eng.Cases.Get(r.Context(), cid, id); err == nil && rev != 0 {
		var ds []map[string]any
		for _, s := range c.Sent[min(known, len(c.Sent)):] {
			ds = append(ds, map[string]any{"stage": s.Stage, "channel": s.Channel, "outcome": s.Outcome, "message_id": s.MessageID, "to": s.To, "at": s.At})
		}
		if ds != nil {
			out["deliveries"] = ds
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *opsAPI) state(w http.ResponseWriter, r *http.Request) {
	cid, id, ok := ids(w, r)
	if !ok {
		return
	}
	action := r.PathValue("action")
	if action == "" {
		action = path.Base(r.URL.Path) // the writeoff route, which needs admin
	}
	to := map[string]dunning.State{"pause": dunning.Paused, "resume": dunning.Active, "dispute": dunning.Disputed, "promise": dunning.Promised, "writeoff": dunning.Closed}[action]
	if to == "" {
		apiError(w, http.StatusNotFound, "unknown action: want remind, pause, resume, dispute, promise or writeoff")
		return
	}
	req, until, ok := decodeOpUntil(w, r)
	if !ok {
		return
	}
	c, err := a.eng.SetState(r.Context(), cid, id, to, until, req.Operator, req.Reason)
	if err != nil {
		engineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"case": c})
}

func (a *opsAPI) dayParam(w http.ResponseWriter, r *http.Request) (int64, rcv.Date, bool) {
	q := r.URL.Query()
	cid, ok := optionalCompany(w, r)
	if !ok {
		return 0, rcv.Date{}, false
	}
	var err error
	day := rcv.DateIn(a.now(), rcv.Rome)
	if v := q.Get("date"); v != "" {
		if day, err = rcv.ParseDate(v); err != nil {
			apiError(w, http.StatusBadRequest, "date: "+err.Error())
			return 0, rcv.Date{}, false
		}
	}
	return cid, day, true
}

func (a *opsAPI) preview(w http.ResponseWriter, r *http.Request) {
	cid, day, ok := a.dayParam(w, r)
	if !ok {
		return
	}
	items, err := a.eng.Preview(r.Context(), cid, day)
	if err != nil {
		engineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"date": day.String(), "would_send": items})
}

func (a *opsAPI) aging(w http.ResponseWriter, r *http.Request) {
	cid, day, ok := a.dayParam(w, r)
	if !ok {
		return
	}
	if cid != 0 {
		ag, err := a.eng.AgingReport(r.Context(), cid, day)
		if err != nil {
			engineError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ag)
		return
	}
	// Every company with cases.
	cos, err := a.companies(r)
	if err != nil {
		engineError(w, err)
		return
	}
	out := []dunning.Aging{}
	for _, c := range cos {
		ag, err := a.eng.AgingReport(r.Context(), c, day)
		if err != nil {
			engineError(w, err)
			return
		}
		out = append(out, ag)
	}
	writeJSON(w, http.StatusOK, map[string]any{"date": day.String(), "companies": out})
}

// companies are the companies that have cases, in order.
func (a *opsAPI) companies(r *http.Request) ([]int64, error) {
	cases, err := a.eng.Cases.List(r.Context(), 0)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, c := range cases {
		if !slices.Contains(out, c.CompanyID) {
			out = append(out, c.CompanyID)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (a *opsAPI) deadletters(w http.ResponseWriter, r *http.Request) {
	limit, ok := queryLimit(w, r, 100)
	if !ok {
		return
	}
	out := []map[string]any{}
	if a.deadLetters != nil {
		var err error
		if out, err = a.deadLetters(r, limit); err != nil {
			engineError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": out})
}

// caseRow is a case as the list endpoints show it: amount_due is what the
// case demands today (late installments less credit notes).
func caseRow(c *dunning.Case, next string, days int, eng *dunning.Engine, today rcv.Date) map[string]any {
	demand := dunning.DemandOn(c, today, false, eng.Calendar)
	row := map[string]any{"company_id": c.CompanyID, "invoice_id": c.InvoiceID, "number": c.Invoice.Number,
		"client": c.Invoice.Client.Name, "state": c.State, "next_stage": next, "days_overdue": days,
		"amount_due": demand.Total.StringFixed(2), "outstanding": c.Outstanding().StringFixed(2), "wake_at": c.WakeAt, "attention": c.Attention}
	if c.Awaiting != nil {
		row["awaiting_approval"] = c.Awaiting
	}
	if c.HeldFor != "" {
		row["held_for"] = c.HeldFor
	}
	return row
}

func (a *opsAPI) approvals(w http.ResponseWriter, r *http.Request) {
	cid, ok := optionalCompany(w, r)
	if !ok {
		return
	}
	cases, err := a.eng.Approvals(r.Context(), cid)
	if err != nil {
		engineError(w, err)
		return
	}
	today := rcv.DateIn(a.now(), rcv.Rome)
	out := []map[string]any{}
	for i := range cases {
		c := &cases[i]
		out = append(out, caseRow(c, c.Awaiting.Stage, c.Invoice.DaysOverdue(today), a.eng, today))
	}
	writeJSON(w, http.StatusOK, map[string]any{"approvals": out})
}

func (a *opsAPI) approval(decision string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cid, id, ok := ids(w, r)
		if !ok {
			return
		}
		req, until, ok := decodeOpUntil(w, r)
		if !ok {
			return
		}
		// A formal step (a stage the policy puts behind approval: the
		// notice, the hand-off) is an admin's decision; a catch-up
		// reminder an operator's.
		if stage, err := a.eng.AwaitsFormalDecision(r.Context(), cid, id); err == nil && stage != "" && kvstore.Rank(principalOf(r).Role) < kvstore.Rank(kvstore.RoleAdmin) {
			apiError(w, http.StatusForbidden, fmt.Sprintf("%s is a formal step: deciding on it needs admin (%s is %s)", stage, principalOf(r).Name, principalOf(r).Role))
			return
		}
		c, err := a.eng.DecideApproval(r.Context(), cid, id, decision, until, req.Operator, req.Reason)
		if err != nil {
			engineError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"case": c})
	}
}

func (a *opsAPI) getMode(w http.ResponseWriter, r *http.Request) {
	cid, ok := pathCompany(w, r)
	if !ok {
		return
	}
	m, err := a.eng.Mode(r.Context(), cid)
	if err != nil {
		engineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"company_id": cid, "mode": m})
}

func (a *opsAPI) setMode(w http.ResponseWriter, r *http.Request) {
	cid, ok := pathCompany(w, r)
	if !ok {
		return
	}
	var req struct {
		Mode     string `json:"mode"`
		Operator string `json:"operator"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<12))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	n, err := a.eng.SetMode(r.Context(), cid, req.Mode, actor(r, req.Operator))
	if err != nil {
		engineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"company_id": cid, "mode": req.Mode, "cases_woken": n})
}

// queryLimit reads ?limit= (1 to 1000, default def); false: answered 400.
func queryLimit(w http.ResponseWriter, r *http.Request, def int) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		apiError(w, http.StatusBadRequest, "limit: want 1..1000")
		return 0, false
	}
	return n, true
}

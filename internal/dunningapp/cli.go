package dunningapp

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/incasso-io/incasso/internal/notify"
	"github.com/shopspring/decimal"
)

// opsCall makes one ops API request with the configured token.
func opsCall(ctx context.Context, cfg Config, method, path string, body any) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(cfg.OpsURL, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.OpsToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("ops API %s: %w", cfg.OpsURL, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("HTTP %d: %v", resp.StatusCode, out["error"])
	}
	return out, nil
}

// cli calls the ops API and prints readable tables.
func cli(ctx context.Context, cmd string, args []string, cfg Config, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dunning "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	company := fs.Int64("company", 0, "company id")
	state := fs.String("state", "", "filter: state")
	stage := fs.String("stage", "", "stage (filter, or the stage to send with remind)")
	minDays := fs.Int("min-days", -1, "filter: minimum days overdue")
	channel := fs.String("channel", "", "remind: only this channel (email, pec, webhook)")
	operator := fs.String("operator", "", "who is acting (audited)")
	reason := fs.String("reason", "", "why (audited)")
	until := fs.String("until", "", "pause/promise: until YYYY-MM-DD")
	date := fs.String("date", "", "preview/aging: the day (default today)")
	var pos []string
	rest := args
	for len(rest) > 0 { // allow positional ids before or after flags
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if cfg.OpsToken == "" {
		return fmt.Errorf("DUNNING_OPS_TOKEN is required")
	}
	call := func(method, path string, body any) (map[string]any, error) {
		return opsCall(ctx, cfg, method, path, body)
	}
	need := func(n int) error {
		if len(pos) != n {
			return fmt.Errorf("%s: want COMPANY INVOICE", cmd)
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	switch cmd {
	case "cases":
		q := url.Values{}
		if *company > 0 {
			q.Set("company", fmt.Sprint(*company))
		}
		if *state != "" {
			q.Set("state", *state)
		}
		if *stage != "" {
			q.Set("stage", *stage)
		}
		if *minDays >= 0 {
			q.Set("min_days_overdue", fmt.Sprint(*minDays))
		}
		out, err := call("GET", "/v1/cases?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		rows := asList(out["cases"])
		sort.SliceStable(rows, func(i, j int) bool { // most overdue first, then the larger amount
			a, b := rows[i].(map[string]any), rows[j].(map[string]any)
			if da, db := numf(a["days_overdue"]), numf(b["days_overdue"]); da != db {
				return da > db
			}
			return dec(a["amount_due"]).GreaterThan(dec(b["amount_due"]))
		})
		if len(rows) == 0 {
			fmt.Fprintln(tw, "No cases match.")
			return nil
		}
		fmt.Fprintln(tw, "COMPANY\tINVOICE\tNUMBER\tCLIENT\tSTATE\tNEXT STAGE\tNEXT ACTION\tDAYS LATE\tDUE\tATTENTION")
		total := decimal.Zero
		for _, c := range rows {
			m := c.(map[string]any)
			att := ""
			if a := asList(m["attention"]); len(a) > 0 {
				att = fmt.Sprintf("%d to check", len(a))
			}
			if m["awaiting_approval"] != nil {
				att = strings.TrimLeft(att+", waits for approval", ", ")
			}
			total = total.Add(dec(m["amount_due"]))
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\n", num(m["company_id"]), num(m["invoice_id"]), m["number"], clean(str(m["client"]), 40), m["state"],
				dash(str(m["next_stage"])), dash(romeMinute(m["wake_at"])), num(m["days_overdue"]), eur(m["amount_due"]), att)
		}
		fmt.Fprintf(tw, "\t\t\t%d cases\t\t\t\t\t%s\t\n", len(rows), eur(total.StringFixed(2)))
	case "show":
		if err := need(2); err != nil {
			return err
		}
		out, err := call("GET", "/v1/cases/"+pos[0]+"/"+pos[1], nil)
		if err != nil {
			return err
		}
		c := out["case"].(map[string]any)
		inv, _ := c["invoice"].(map[string]any)
		cl, _ := inv["client"].(map[string]any)
		sum, _ := out["summary"].(map[string]any)
		contacts := strings.Join(nonEmpty("e-mail "+str(cl["email"]), "PEC "+str(cl["pec"])), ", ")
		fmt.Fprintf(tw, "invoice\t%v (id %v), of %v\n", inv["number"], num(c["invoice_id"]), italianDate(inv["date"]))
		fmt.Fprintf(tw, "client\t%v\t%v\n", clean(str(cl["name"]), 80), contacts)
		fmt.Fprintf(tw, "state\t%v\n", c["state"])
		fmt.Fprintf(tw, "amount due\t%v, %v days late (invoice total %v)\n", eur(sum["amount_due"]), num(sum["days_overdue"]), eur(inv["amount_gross"]))
		fmt.Fprintf(tw, "next stage\t%v\n", dash(str(sum["next_stage"])))
		fmt.Fprintf(tw, "next action\t%v\n", dash(romeMinute(c["wake_at"])))
		if ap, ok := c["awaiting_approval"].(map[string]any); ok {
			fmt.Fprintf(tw, "waits for approval\t%v since %v: %v\n", ap["stage"], romeMinute(ap["since"]), ap["reason"])
		}
		for i, a := range asList(c["attention"]) {
			label := ""
			if i == 0 {
				label = "to check"
			}
			fmt.Fprintf(tw, "%s\t- %v\n", label, clean(str(a), 200))
		}
		fmt.Fprintln(tw, "\nWHEN (Europe/Rome)\tACTION\tSTAGE\tCHANNEL\tOPERATOR\tREASON")
		for _, e := range asList(out["timeline"]) {
			m := e.(map[string]any)
			action := fmt.Sprint(m["action"])
			if action == "state" {
				action = fmt.Sprintf("%v -> %v", m["from"], m["to"])
				if str(m["from"]) == "" {
					action = fmt.Sprintf("opened (%v)", m["to"])
				}
			}
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\n", romeTime(m["at"]), clean(action, 40), dash(str(m["stage"])), dash(str(m["channel"])), dash(clean(str(m["operator"]), 80)), clean(str(m["reason"]), 200))
		}
	case "remind", "pause", "resume", "dispute", "promise", "writeoff":
		if err := need(2); err != nil {
			return err
		}
		body := map[string]string{"operator": *operator, "reason": *reason}
		if *until != "" {
			body["until"] = *until
		}
		if cmd == "remind" {
			body["stage"], body["channel"] = *stage, *channel
		}
		out, err := call("POST", "/v1/cases/"+pos[0]+"/"+pos[1]+"/"+cmd, body)
		if err != nil {
			return err
		}
		if _, ok := out["messages_sent"]; ok {
			ds := asList(out["deliveries"])
			if len(ds) == 0 {
				fmt.Fprintln(tw, "Nothing sent: the stage already went out on each of its channels, or the invoice is no longer due (dunning show says which).")
			}
			for _, d := range ds {
				m := d.(map[string]any)
				fmt.Fprintf(tw, "%v\t%v\tby %v\tto %v\t%v\tmessage %v\n", outcomeWord(str(m["outcome"])), m["stage"], m["channel"], str(m["to"]), romeTime(m["at"]), m["message_id"])
			}
		} else {
			fmt.Fprintf(tw, "state\t%v\n", out["case"].(map[string]any)["state"])
		}
	case "approvals":
		q := url.Values{}
		if *company > 0 {
			q.Set("company", fmt.Sprint(*company))
		}
		out, err := call("GET", "/v1/approvals?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		rows, _ := out["approvals"].([]any)
		if len(rows) == 0 {
			fmt.Fprintln(tw, "Nothing waits for approval.")
			return nil
		}
		fmt.Fprintln(tw, "COMPANY\tINVOICE\tNUMBER\tCLIENT\tSTAGE\tWHY\tWAITING SINCE\tDAYS LATE\tDUE €")
		for _, row := range rows {
			m := row.(map[string]any)
			ap, _ := m["awaiting_approval"].(map[string]any)
			since := fmt.Sprint(ap["since"])
			if t, err := time.Parse(time.RFC3339Nano, since); err == nil {
				since = t.In(rome).Format("02/01/2006 15:04")
			}
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\n", num(m["company_id"]), num(m["invoice_id"]), m["number"], m["client"], ap["stage"], ap["reason"], since, num(m["days_overdue"]), m["amount_due"])
		}
	case "approve", "reject", "postpone":
		if err := need(2); err != nil {
			return err
		}
		body := map[string]string{"operator": *operator, "reason": *reason}
		if *until != "" {
			body["until"] = *until
		}
		out, err := call("POST", "/v1/cases/"+pos[0]+"/"+pos[1]+"/"+cmd, body)
		if err != nil {
			return err
		}
		c := out["case"].(map[string]any)
		fmt.Fprintf(tw, "%s\tinvoice %v\nstate\t%v\nnext stage\t%v\n", map[string]string{"approve": "approved", "reject": "rejected", "postpone": "postponed"}[cmd], num(c["invoice_id"]), c["state"], num(c["stage"]))
	case "mode":
		if *company <= 0 {
			return fmt.Errorf("mode: -company is required")
		}
		path := fmt.Sprintf("/v1/companies/%d/mode", *company)
		var out map[string]any
		var err error
		if len(pos) == 0 {
			out, err = call("GET", path, nil)
		} else {
			out, err = call("PUT", path, map[string]string{"mode": pos[0], "operator": *operator})
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "company\t%v\nmode\t%v\n", num(out["company_id"]), out["mode"])
		if n, ok := out["cases_woken"]; ok {
			fmt.Fprintf(tw, "cases woken\t%v\n", num(n))
		}
	case "preview", "aging":
		q := url.Values{}
		if *company > 0 {
			q.Set("company", fmt.Sprint(*company))
		}
		if *date != "" {
			q.Set("date", *date)
		}
		out, err := call("GET", "/v1/"+cmd+"?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		if cmd == "aging" {
			reports := asList(out["companies"])
			if reports == nil {
				reports = []any{out}
			}
			fmt.Fprintln(tw, "COMPANY\tNOT DUE\t0-30\t31-60\t61-90\tOVER 90\tOPEN\tDSO (days)")
			var tot [6]decimal.Decimal
			for _, r := range reports {
				m := r.(map[string]any)
				b, _ := m["buckets"].(map[string]any)
				vals := []any{b["current"], b["0-30"], b["31-60"], b["61-90"], b["90+"], m["open"]}
				for i, v := range vals {
					tot[i] = tot[i].Add(dec(v))
				}
				fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\t%v\t%.0f\n", num(m["company_id"]), eur(vals[0]), eur(vals[1]), eur(vals[2]), eur(vals[3]), eur(vals[4]), eur(vals[5]), numf(m["dso"]))
			}
			if len(reports) > 1 {
				fmt.Fprintf(tw, "all\t%v\t%v\t%v\t%v\t%v\t%v\t\n", eur(tot[0]), eur(tot[1]), eur(tot[2]), eur(tot[3]), eur(tot[4]), eur(tot[5]))
			}
			return nil
		}
		items := asList(out["would_send"])
		fmt.Fprintf(tw, "On %v this would go out (dry run, nothing is sent):\n", italianDate(out["date"]))
		if len(items) == 0 {
			fmt.Fprintln(tw, "nothing.")
			return nil
		}
		fmt.Fprintln(tw, "AT\tCOMPANY\tCLIENT\tINVOICE\tSTAGE\tCHANNELS\tDUE")
		total := decimal.Zero
		for _, it := range items {
			m := it.(map[string]any)
			total = total.Add(dec(m["amount_due"]))
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\t%v\n", romeClock(m["at"]), num(m["company_id"]), clean(str(m["client"]), 40), m["number"], m["stage"], list(m["channels"], "-"), eur(m["amount_due"]))
		}
		fmt.Fprintf(tw, "\t\t%d messages\t\t\t\t%v\n", len(items), eur(total.StringFixed(2)))
	case "whoami":
		out, err := call("GET", "/v1/whoami", nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "name\t%v\nrole\t%v\nshared token\t%v\n", clean(str(out["name"]), 64), out["role"], out["shared_token"])
	case "deadletters":
		out, err := call("GET", "/v1/deadletters", nil)
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "SEQ\tTIME\tSUBJECT\tEVENT\tREASON")
		for _, d := range out["dead_letters"].([]any) {
			m := d.(map[string]any)
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\n", num(m["seq"]), m["time"], m["subject"], m["event_id"], m["reason"])
		}
	default:
		return fmt.Errorf("unknown command %q (want run, render, operators, endpoints, whoami, cases, show, approvals, approve, reject, postpone, mode, remind, pause, resume, dispute, promise, writeoff, preview, aging, deadletters)", cmd)
	}
	return nil
}

var rome, _ = time.LoadLocation("Europe/Rome")

func num(v any) string {
	if f, ok := v.(float64); ok {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprint(v)
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func outcomeWord(o string) string {
	switch o {
	case "sent":
		return "sent"
	case "possibly_sent":
		return "POSSIBLY SENT (check before sending again)"
	case "failed":
		return "FAILED"
	}
	return o
}

func numf(v any) float64 {
	f, _ := v.(float64)
	return f
}

func dec(v any) decimal.Decimal {
	switch x := v.(type) {
	case decimal.Decimal:
		return x
	case string:
		d, _ := decimal.NewFromString(x)
		return d
	case float64:
		return decimal.NewFromFloat(x)
	}
	return decimal.Zero
}

// eur formats an amount as Italians read it: € 1.234,56.
func eur(v any) string {
	if v == nil || v == "" {
		return "-"
	}
	return "€ " + notify.Euro(dec(v))
}

func dash(s string) string {
	if s == "" || s == "<nil>" {
		return "-"
	}
	return s
}

func nonEmpty(parts ...string) []string {
	var out []string
	for _, p := range parts {
		if !strings.HasSuffix(p, " ") {
			out = append(out, p)
		}
	}
	return out
}

// romeMinute shows an RFC 3339 time in Europe/Rome, to the minute; zero
// times are empty.
func romeMinute(v any) string {
	t, err := time.Parse(time.RFC3339Nano, str(v))
	if err != nil || t.IsZero() || t.Year() < 2000 {
		return ""
	}
	return t.In(rome).Format("02/01/2006 15:04")
}

func romeClock(v any) string {
	t, err := time.Parse(time.RFC3339Nano, str(v))
	if err != nil {
		return str(v)
	}
	return t.In(rome).Format("15:04")
}

// italianDate shows YYYY-MM-DD as DD/MM/YYYY.
func italianDate(v any) string {
	t, err := time.Parse(time.DateOnly, str(v))
	if err != nil {
		return str(v)
	}
	return t.Format("02/01/2006")
}

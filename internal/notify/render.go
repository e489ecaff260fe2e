// Package notify delivers dunning messages: e-mail and PEC over SMTP
// (wneessen/go-mail) with Italian and English templates, and signed webhook
// hand-offs to collection platforms.
package notify

import (
	"bytes"
	"embed"
	"fmt"
	htmltpl "html/template"
	"strings"
	texttpl "text/template"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/dunning"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

//go:embed templates/*
var templates embed.FS

// Euro formats an amount Italian-style: 1.234,56.
func Euro(d decimal.Decimal) string {
	s := d.StringFixed(2)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteRune(r)
	}
	out := b.String() + "," + frac
	if neg {
		out = "-" + out
	}
	return out
}

// itDate formats 2026-11-24 as 24/11/2026.
func itDate(d rcv.Date) string {
	if d.IsZero() {
		return ""
	}
	return fmt.Sprintf("%02d/%02d/%04d", d.Day, d.Month, d.Year)
}

type view struct {
	Client, Template, Due, Total string
	Interest                     bool
	Items                        []itemView
}

type itemView struct {
	Number, Date, Due, AmountDue, Interest, Compensation string
	DaysOverdue                                          int
}

// Rendered is a message's subject and bodies.
type Rendered struct{ Subject, Text, HTML string }

// Render fills the templates of the message's language.
func Render(m dunning.Message) (Rendered, error) {
	lang := m.Language
	if lang != "en" {
		lang = "it"
	}
	v := view{Client: m.Client.Name, Template: m.Template}
	total := decimal.Zero
	for _, it := range m.Items {
		due := it.Invoice.NextDue()
		iv := itemView{Number: it.Invoice.Number, Date: itDate(it.Invoice.Date), Due: itDate(due), AmountDue: Euro(it.Invoice.AmountDue()), DaysOverdue: it.DaysOverdue}
		total = total.Add(it.Invoice.AmountDue())
		if it.Stage.Interest {
			v.Interest = true
			iv.Interest, iv.Compensation = Euro(it.Interest), Euro(it.Compensation)
			total = total.Add(it.Interest).Add(it.Compensation)
		}
		if v.Due == "" {
			v.Due = iv.Due
		}
		v.Items = append(v.Items, iv)
	}
	v.Total = Euro(total)
	ht, err := htmltpl.ParseFS(templates, "templates/reminder."+lang+".html")
	if err != nil {
		return Rendered{}, err
	}
	tt, err := texttpl.ParseFS(templates, "templates/reminder."+lang+".txt")
	if err != nil {
		return Rendered{}, err
	}
	var subj, html, text bytes.Buffer
	if err := ht.ExecuteTemplate(&subj, "subject", v); err != nil {
		return Rendered{}, err
	}
	if err := ht.ExecuteTemplate(&html, "html", v); err != nil {
		return Rendered{}, err
	}
	if err := tt.ExecuteTemplate(&text, "text", v); err != nil {
		return Rendered{}, err
	}
	// The subject went through html/template: undo its escaping.
	return Rendered{Subject: unescape(subj.String()), Text: text.String(), HTML: html.String()}, nil
}

func unescape(s string) string {
	r := strings.NewReplacer("&amp;", "&", "&#39;", "'", "&#34;", "\"", "&lt;", "<", "&gt;", ">", "&quot;", "\"")
	return strings.TrimSpace(r.Replace(s))
}

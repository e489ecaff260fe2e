// Package notify delivers dunning messages: e-mail and PEC over SMTP
// (wneessen/go-mail) with Italian and English templates, and signed webhook
// hand-offs to collection platforms.
package notify

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"os"
	"slices"
	"strings"
	"text/template"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/dunning"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

//go:embed templates/*
var embedded embed.FS

// Letters are the templates the e-mail and PEC channels render: for each
// policy template (courtesy, reminder, formal_notice) and language (it,
// en) a file "<template>.<lang>.txt" defining "subject" and "body", and a
// "common.<lang>.txt" with the shared blocks ("items", "payment",
// "signature"). The HTML alternative is the text, escaped, in paragraphs.
var Letters = []string{"courtesy", "reminder", "formal_notice"}

// Languages the letters are written in.
var Languages = []string{"it", "en"}

// Renderer renders letters from a set of templates.
type Renderer struct {
	sets map[string]*template.Template // "<template>.<lang>"
}

// DefaultRenderer renders the shipped templates.
var DefaultRenderer = func() *Renderer {
	r, err := NewRenderer("")
	if err != nil {
		panic(err) // tested
	}
	return r
}()

// NewRenderer loads the shipped templates, each overridden by a file of
// the same name in dir (empty: none). Every letter is parsed and rendered
// against sample messages of each stage, so a broken template fails at
// start with its file and line instead of at the first send.
func NewRenderer(dir string) (*Renderer, error) {
	var override fs.FS
	if dir != "" {
		st, err := os.Stat(dir)
		if err != nil || !st.IsDir() {
			return nil, fmt.Errorf("notify: templates directory %q: not a directory", dir)
		}
		override = os.DirFS(dir)
		entries, _ := fs.ReadDir(override, ".")
		for _, e := range entries {
			if _, err := fs.Stat(embedded, "templates/"+e.Name()); err != nil && strings.HasSuffix(e.Name(), ".txt") {
				return nil, fmt.Errorf("notify: %s: unknown template file (want one of %s.<it|en>.txt, common.<it|en>.txt)", e.Name(), strings.Join(Letters, ", "))
			}
		}
	}
	read := func(name string) (string, string, error) {
		if override != nil {
			if b, err := fs.ReadFile(override, name); err == nil {
				return string(b), dir + "/" + name, nil
			}
		}
		b, err := fs.ReadFile(embedded, "templates/"+name)
		return string(b), name, err
	}
	r := &Renderer{sets: map[string]*template.Template{}}
	var errs []error
	for _, lang := range Languages {
		common, cname, err := read("common." + lang + ".txt")
		if err != nil {
			return nil, err
		}
		for _, l := range Letters {
			body, bname, err := read(l + "." + lang + ".txt")
			if err != nil {
				return nil, err
			}
			t, err := template.New(bname).Option("missingkey=error").Parse(body)
			if err == nil {
				_, err = t.New(cname).Parse(common)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("notify: %w", err))
				continue
			}
			for _, name := range []string{"subject", "body"} {
				if t.Lookup(name) == nil {
					errs = append(errs, fmt.Errorf("notify: %s: no {{define %q}}", bname, name))
				}
			}
			r.sets[l+"."+lang] = t
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, m := range Samples() {
		if _, err := r.Render(m); err != nil {
			errs = append(errs, err)
		}
	}
	return r, errors.Join(errs...)
}

// Rendered is a message's subject and bodies.
type Rendered struct{ Subject, Text, HTML string }

// Render fills the templates of the message's language with the default
// templates.
func Render(m dunning.Message) (Rendered, error) { return DefaultRenderer.Render(m) }

// Render fills the message's template in its language.
func (r *Renderer) Render(m dunning.Message) (Rendered, error) {
	lang := m.Language
	if lang != "en" {
		lang = "it"
	}
	t := r.sets[m.Template+"."+lang]
	if t == nil {
		return Rendered{}, fmt.Errorf("notify: no letter template %q", m.Template)
	}
	v := viewOf(m, lang)
	var subj, body bytes.Buffer
	if err := t.ExecuteTemplate(&subj, "subject", v); err != nil {
		return Rendered{}, fmt.Errorf("notify: %w", err)
	}
	if err := t.ExecuteTemplate(&body, "body", v); err != nil {
		return Rendered{}, fmt.Errorf("notify: %w", err)
	}
	text := tidy(body.String())
	return Rendered{Subject: strings.Join(strings.Fields(subj.String()), " "), Text: text, HTML: htmlOf(text, lang)}, nil
}

// tidy trims trailing spaces and collapses runs of blank lines.
func tidy(s string) string {
	var out []string
	blank := false
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		l = strings.TrimRight(l, " \t")
		if l == "" {
			if blank {
				continue
			}
			blank = true
		} else {
			blank = false
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n") + "\n"
}

// htmlOf is the text as HTML: escaped, a paragraph per block, line breaks
// kept.
func htmlOf(text, lang string) string {
	var b strings.Builder
	b.WriteString(`<!doctype html><html lang="` + lang + `"><body style="font-family:sans-serif;line-height:1.4">`)
	for _, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		b.WriteString("<p>")
		b.WriteString(strings.ReplaceAll(html.EscapeString(para), "\n", "<br>\n"))
		b.WriteString("</p>\n")
	}
	b.WriteString("</body></html>")
	return b.String()
}

// Euro formats an amount Italian-style: 1.234,56.
func Euro(d decimal.Decimal) string { return money(d, '.', ',') }

// EuroEN formats an amount English-style: 1,234.56.
func EuroEN(d decimal.Decimal) string { return money(d, ',', '.') }

func money(d decimal.Decimal, thousands, point byte) string {
	s := d.StringFixed(2)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(thousands)
		}
		b.WriteRune(r)
	}
	b.WriteByte(point)
	b.WriteString(frac)
	return b.String()
}

// itDate formats 2026-11-24 as 24/11/2026 (both languages: the letters are
// Italian business letters).
func itDate(d rcv.Date) string {
	if d.IsZero() {
		return ""
	}
	return fmt.Sprintf("%02d/%02d/%04d", d.Day, d.Month, d.Year)
}

type view struct {
	Client, Due, Total, Today, Numbers       string
	InterestTotal, CompensationTotal         string
	GrandTotal, Rates, InterestFrom, Causale string
	Creditor, VATNumber, Address, Contacts   string
	Signature, IBAN, Bank                    string
	Plural, Prior, Clause1454                bool
	Ordinal, TermDays                        int
	Items                                    []itemView
}

type itemView struct {
	Number, Date, Due, Amount, Credited string
	Lines                               []lineView
	Upcoming                            []lineView
}

type lineView struct {
	Due, Amount string
	DaysLate    int
}

func viewOf(m dunning.Message, lang string) view {
	eur := Euro
	if lang == "en" {
		eur = EuroEN
	}
	v := view{Client: m.Client.Name, Today: itDate(m.Date), Plural: len(m.Items) > 1, Prior: m.PriorContacts > 0,
		Ordinal: max(m.Ordinal, 1), TermDays: m.TermDays, Clause1454: m.Clause1454,
		Creditor: m.Creditor.Name, VATNumber: m.Creditor.VATNumber, Address: m.Creditor.Address, Signature: m.Creditor.Signature,
		IBAN: formatIBAN(m.Creditor.IBAN), Bank: m.Creditor.Bank}
	var contacts []string
	for _, c := range [][2]string{{"Tel.", m.Creditor.Phone}, {"E-mail", m.Creditor.Email}, {"PEC", m.Creditor.PEC}} {
		if c[1] != "" {
			contacts = append(contacts, c[0]+" "+c[1])
		}
	}
	v.Contacts = strings.Join(contacts, " · ")
	total, intr, comp := decimal.Zero, decimal.Zero, decimal.Zero
	var numbers, refs []string
	var rates []string
	var from rcv.Date
	for _, it := range m.Items {
		iv := itemView{Number: it.Invoice.Number, Date: itDate(it.Invoice.Date), Amount: eur(it.Demand.Total)}
		if it.Demand.Credited.IsPositive() {
			iv.Credited = eur(it.Demand.Credited)
		}
		for _, d := range it.Demand.Items {
			if iv.Due == "" {
				iv.Due = itDate(d.Installment.DueDate)
			}
			if !d.LateFrom.IsZero() {
				iv.Lines = append(iv.Lines, lineView{Due: itDate(d.Installment.DueDate), Amount: eur(d.Amount), DaysLate: d.DaysLate})
			}
		}
		for _, u := range it.Demand.Upcoming {
			iv.Upcoming = append(iv.Upcoming, lineView{Due: itDate(u.DueDate), Amount: eur(u.Amount)})
		}
		if v.Due == "" {
			v.Due = iv.Due
		}
		total = total.Add(it.Demand.Total)
		intr, comp = intr.Add(it.Interest), comp.Add(it.Compensation)
		for _, r := range it.Rates {
			if s := pct(r, lang); !slices.Contains(rates, s) {
				rates = append(rates, s)
			}
		}
		if !it.InterestFrom.IsZero() && (from.IsZero() || it.InterestFrom.Before(from)) {
			from = it.InterestFrom
		}
		numbers = append(numbers, it.Invoice.Number)
		refs = append(refs, it.Invoice.Number+" del "+itDate(it.Invoice.Date))
		v.Items = append(v.Items, iv)
	}
	v.Total, v.InterestTotal, v.CompensationTotal = eur(total), eur(intr), eur(comp)
	v.GrandTotal = eur(total.Add(intr).Add(comp))
	v.Rates, v.InterestFrom = strings.Join(rates, " / "), itDate(from)
	v.Numbers = strings.Join(numbers, ", ")
	if lang == "en" {
		refs = refs[:0]
		for _, it := range m.Items {
			refs = append(refs, it.Invoice.Number+" of "+itDate(it.Invoice.Date))
		}
		v.Causale = "Payment of invoice " + strings.Join(refs, ", ")
		if v.Plural {
			v.Causale = "Payment of invoices " + strings.Join(refs, ", ")
		}
	} else {
		v.Causale = "Saldo fattura n. " + strings.Join(refs, ", ")
		if v.Plural {
			v.Causale = "Saldo fatture n. " + strings.Join(refs, ", ")
		}
	}
	return v
}

// formatIBAN groups an IBAN by four characters, as it is printed.
func formatIBAN(s string) string {
	s = strings.ToUpper(strings.ReplaceAll(s, " ", ""))
	var parts []string
	for len(s) > 4 {
		parts, s = append(parts, s[:4]), s[4:]
	}
	if s != "" {
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// pct formats a rate in percent: 10,15% (10.15% in English).
func pct(r decimal.Decimal, lang string) string {
	s := r.Round(2).String()
	if lang != "en" {
		s = strings.ReplaceAll(s, ".", ",")
	}
	return s + "%"
}

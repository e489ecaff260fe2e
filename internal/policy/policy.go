// Package policy loads dunning policies from YAML and validates them, with
// errors that name the file, line and field. A policy is a list of stages,
// each an offset in days from the installment's due date (negative: before),
// the channels to use, the template, and conditions. Per-company overrides
// replace the fields they set.
package policy

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
	"gopkg.in/yaml.v3"
)

//go:embed default.yaml
var defaultYAML []byte

// Channel is how a stage reaches the client.
type Channel string

// Channels.
const (
	Email   Channel = "email"
	PEC     Channel = "pec"
	Webhook Channel = "webhook" // hand-off to a collection platform
)

// Stage is one step of a policy.
type Stage struct {
	Name         string          `yaml:"name"`
	OffsetDays   int             `yaml:"offset_days"`
	Channels     []Channel       `yaml:"channels"`
	Template     string          `yaml:"template"`
	MinAmountDue decimal.Decimal `yaml:"-"`
	MinAmountRaw string          `yaml:"min_amount_due"`
	ExcludeTags  []string        `yaml:"exclude_tags"`
	// Escalate hands the case to a collection platform (the case becomes
	// escalated and no later stage runs).
	Escalate bool `yaml:"escalate"`
	// Interest adds D.Lgs. 231/2002 interest and the €40 compensation to
	// the message.
	Interest bool `yaml:"interest"`
	// Requires: the stage runs only once at least one of these (earlier)
	// stages was delivered; a formal notice never comes first, whatever
	// the invoice's lateness.
	Requires []string `yaml:"requires"`
	// MinDaysAfter: days that must have passed since the last delivered
	// stage of the case (on top of the policy's per-client min_gap_days).
	MinDaysAfter int `yaml:"min_days_after"`
	// TermDays is the term the letter gives to pay (a formal notice's
	// "entro 15 giorni"); a stage that requires this one waits until the
	// term has expired.
	TermDays int `yaml:"term_days"`
	// Approval: the stage waits in the approval queue until an operator
	// approves, rejects or postpones it.
	Approval bool `yaml:"approval"`
	// Clause1454 adds the art. 1454 c.c. clause (diffida ad adempiere: the
	// contract is resolved if the term passes) to a formal notice.
	Clause1454 bool `yaml:"clause_1454"`
}

// Formal reports a formal step: a stage behind approval, a hand-off, or a
// PEC letter (a formal notice). "Remind now" never sends one unless it is
// named, and the console marks it.
func (s Stage) Formal() bool {
	return s.Approval || s.Escalate || slices.Contains(s.Channels, PEC)
}

// Creditor is who the letters are from and how to pay: what FIC does not
// provide (the registered office, the signature) or what overrides it.
type Creditor struct {
	Name      string `yaml:"name"`       // default: the company's name in FIC
	VATNumber string `yaml:"vat_number"` // default: FIC's
	TaxCode   string `yaml:"tax_code"`
	Address   string `yaml:"address"` // registered office, one line
	Email     string `yaml:"email"`
	PEC       string `yaml:"pec"`
	Phone     string `yaml:"phone"`
	IBAN      string `yaml:"iban"` // default: the invoice's payment account, then the company's first bank account in FIC
	Bank      string `yaml:"bank"`
	Signature string `yaml:"signature"` // e.g. "Ufficio amministrazione"
	FromName  string `yaml:"from_name"` // the From display name (default: Name)
	ReplyTo   string `yaml:"reply_to"`
}

// Catch-up policies for a case opened after some of its stages' days.
const (
	// CatchUpApprove starts at the first reminder and holds its first
	// message for approval (the default: a backlog found on the first sync
	// of a company goes out only once ops have looked at it).
	CatchUpApprove = "approve"
	// CatchUpStart starts at the first reminder and sends it when due.
	CatchUpStart = "start"
)

// Modes of a company.
const (
	ModeLive   = "live"
	ModeShadow = "shadow" // everything computed and previewable, nothing sent
)

// What a reversed installment (a bounced RiBa or direct debit) means.
const (
	ReversedOwed = "owed" // owed again: dunned like an unpaid installment
	ReversedHold = "hold" // held for ops: the case sends nothing until an operator resumes it
)

// Policy is a complete, validated policy.
type Policy struct {
	Name           string              `yaml:"name"`
	WindowStart    string              `yaml:"send_window_start"`
	WindowEnd      string              `yaml:"send_window_end"`
	MinGapDays     int                 `yaml:"min_gap_days"`
	Language       string              `yaml:"fallback_language"`
	Platform       string              `yaml:"platform"` // collection platform for webhook hand-offs
	ExcludeClients []string            `yaml:"exclude_clients"`
	ClientTags     map[string][]string `yaml:"client_tags"`
	Stages         []Stage             `yaml:"stages"`
	// CatchUp is what a case opened late does (CatchUpApprove, CatchUpStart).
	CatchUp string `yaml:"catch_up"`
	// Mode is the company's initial mode (ModeLive, ModeShadow); ops switch
	// it at run time.
	Mode string `yaml:"mode"`
	// Reversed is what a reversed installment means (ReversedOwed, ReversedHold).
	Reversed string `yaml:"reversed"`
	// HoldEIStatus lists the e-invoice statuses (FIC's ei_status) whose
	// invoices are not chased: discarded by SDI, rejected by a public
	// administration. The case holds with an ops task.
	HoldEIStatus []string `yaml:"hold_ei_status"`
	Creditor     Creditor `yaml:"creditor"`
	// AttachInvoicePDF attaches each invoice's PDF, as FIC serves it, to
	// e-mails and PECs (a letter goes without it when FIC has none).
	AttachInvoicePDF bool `yaml:"attach_invoice_pdf"`
}

// Ordinal is which message of its template stage i is: 1 for the first
// stage with that template, 2 for the next (a second reminder reads
// differently from the first).
func (p *Policy) Ordinal(i int) int {
	n := 1
	for j := 0; j < i && j < len(p.Stages); j++ {
		if p.Stages[j].Template == p.Stages[i].Template {
			n++
		}
	}
	return n
}

// Set is the default policy and the per-company overrides.
type Set struct {
	Default   Policy
	Companies map[int64]Policy
}

// For returns the policy of a company.
func (s *Set) For(companyID int64) *Policy {
	if p, ok := s.Companies[companyID]; ok {
		return &p
	}
	return &s.Default
}

type file struct {
	Policy    `yaml:",inline"`
	Companies map[string]yaml.Node `yaml:"companies"`
}

// Templates the shipped renderer knows; validation refuses others.
var Templates = []string{"courtesy", "reminder", "formal_notice", "handoff"}

// Default returns the policy shipped with Incasso (Italian B2B practice).
func Default() *Set {
	s, err := Parse("default.yaml", defaultYAML)
	if err != nil {
		panic(err) // tested
	}
	return s
}

// DefaultYAML returns the text of the default policy (a starting point
// for a policy file).
func DefaultYAML() []byte { return slices.Clone(defaultYAML) }

// Load reads and validates a policy file.
func Load(path string) (*Set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, b)
}

var lineRE = regexp.MustCompile(`line (\d+)`)

// Parse validates YAML; name is used in error messages.
func Parse(name string, data []byte) (*Set, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	pos := positions(&root)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f file
	if err := dec.Decode(&f); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			var msgs []string
			for _, e := range te.Errors {
				if m := lineRE.FindStringSubmatch(e); m != nil {
					msgs = append(msgs, fmt.Sprintf("%s:%s: %s", name, m[1], strings.TrimPrefix(e, "line "+m[1]+": ")))
				} else {
					msgs = append(msgs, name+": "+e)
				}
			}
			return nil, errors.New(strings.Join(msgs, "\n"))
		}
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	set := &Set{Default: f.Policy, Companies: map[int64]Policy{}}
	errs := validate(&set.Default, "", name, pos)
	for key, node := range f.Companies {
		cid, err := strconv.ParseInt(key, 10, 64)
		if err != nil || cid <= 0 {
			errs = append(errs, fmt.Errorf("%s:%d: companies.%s: want a FIC company id", name, pos["companies."+key], key))
			continue
		}
		p := set.Default // override: fields set replace the default's
		p.Stages = slices.Clone(p.Stages)
		if err := node.Decode(&p); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: companies.%s: %v", name, node.Line, key, err))
			continue
		}
		errs = append(errs, validate(&p, "companies."+key+".", name, pos)...)
		set.Companies[cid] = p
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return set, nil
}

// positions maps "stages[1].offset_days" to its line.
func positions(root *yaml.Node) map[string]int {
	out := map[string]int{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				out[p] = k.Line
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				out[p] = c.Line
				walk(c, p)
			}
		}
	}
	walk(root, "")
	return out
}

func validate(p *Policy, prefix, name string, pos map[string]int) []error {
	var errs []error
	bad := func(field, f string, a ...any) {
		path := prefix + field
		line := 0
		for q := path; q != ""; {
			if l, ok := pos[q]; ok {
				line = l
				break
			}
			i := strings.LastIndexAny(q, ".[")
			if i < 0 {
				break
			}
			q = q[:i]
		}
		errs = append(errs, fmt.Errorf("%s:%d: %s: %s", name, line, path, fmt.Sprintf(f, a...)))
	}
	if p.WindowStart == "" {
		p.WindowStart = "09:00"
	}
	if p.WindowEnd == "" {
		p.WindowEnd = "18:00"
	}
	for _, w := range []struct{ f, v string }{{"send_window_start", p.WindowStart}, {"send_window_end", p.WindowEnd}} {
		if !regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`).MatchString(w.v) {
			bad(w.f, "%q: want HH:MM", w.v)
		}
	}
	if p.WindowStart >= p.WindowEnd {
		bad("send_window_end", "%s is not after %s", p.WindowEnd, p.WindowStart)
	}
	if p.MinGapDays < 0 {
		bad("min_gap_days", "must not be negative")
	}
	if p.Language == "" {
		p.Language = "it"
	}
	if p.Language != "it" && p.Language != "en" {
		bad("fallback_language", "%q: want it or en", p.Language)
	}
	if len(p.Stages) == 0 {
		bad("stages", "at least one stage is required")
	}
	// Settings with a few values: empty takes the first.
	for _, e := range []struct {
		field string
		v     *string
		want  []string
	}{
		{"catch_up", &p.CatchUp, []string{CatchUpApprove, CatchUpStart}},
		{"mode", &p.Mode, []string{ModeLive, ModeShadow}},
		{"reversed", &p.Reversed, []string{ReversedOwed, ReversedHold}},
	} {
		switch {
		case *e.v == "":
			*e.v = e.want[0]
		case !slices.Contains(e.want, *e.v):
			bad(e.field, "%q: want %s", *e.v, strings.Join(e.want, " or "))
		}
	}
	if p.HoldEIStatus == nil {
		p.HoldEIStatus = []string{"discarded", "rejected", "manual_rejected"}
	}
	if iban := strings.ReplaceAll(p.Creditor.IBAN, " ", ""); iban != "" && !ValidIBAN(iban) {
		bad("creditor.iban", "%q is not a valid IBAN", p.Creditor.IBAN)
	}
	names := map[string]bool{}
	for i := range p.Stages {
		s := &p.Stages[i]
		f := fmt.Sprintf("stages[%d].", i)
		if s.Name == "" {
			bad(f+"name", "required")
		} else if names[s.Name] {
			bad(f+"name", "%q is used twice", s.Name)
		}
		names[s.Name] = true
		if i > 0 && s.OffsetDays <= p.Stages[i-1].OffsetDays {
			bad(f+"offset_days", "%d must be after the previous stage's %d", s.OffsetDays, p.Stages[i-1].OffsetDays)
		}
		if s.OffsetDays < -60 || s.OffsetDays > 365 {
			bad(f+"offset_days", "%d is outside -60..365", s.OffsetDays)
		}
		if len(s.Channels) == 0 {
			bad(f+"channels", "at least one channel is required")
		}
		for j, c := range s.Channels {
			switch c {
			case Email, PEC, Webhook:
			default:
				bad(fmt.Sprintf("%schannels[%d]", f, j), "%q: want email, pec or webhook", c)
			}
		}
		if slices.Contains(s.Channels, Webhook) && p.Platform == "" {
			bad(f+"channels", "webhook hand-off needs a top-level platform")
		}
		if s.Template == "" {
			bad(f+"template", "required")
		} else if !slices.Contains(Templates, s.Template) {
			bad(f+"template", "%q: want one of %s", s.Template, strings.Join(Templates, ", "))
		}
		if s.MinAmountRaw != "" {
			d, err := decimal.NewFromString(s.MinAmountRaw)
			if err != nil || d.IsNegative() {
				bad(f+"min_amount_due", "%q: want a non-negative amount like \"100.00\"", s.MinAmountRaw)
			}
			s.MinAmountDue = d
		}
		if s.Escalate && i != len(p.Stages)-1 {
			bad(f+"escalate", "only the last stage can escalate")
		}
		for j, r := range s.Requires {
			k := slices.IndexFunc(p.Stages[:i], func(x Stage) bool { return x.Name == r })
			if k < 0 {
				bad(fmt.Sprintf("%srequires[%d]", f, j), "%q is not an earlier stage", r)
			}
		}
		if s.MinDaysAfter < 0 || s.MinDaysAfter > 365 {
			bad(f+"min_days_after", "%d is outside 0..365", s.MinDaysAfter)
		}
		if s.TermDays < 0 || s.TermDays > 365 {
			bad(f+"term_days", "%d is outside 0..365", s.TermDays)
		}
		if s.Clause1454 && s.TermDays < 15 {
			bad(f+"clause_1454", "an art. 1454 c.c. term is at least 15 days (term_days is %d)", s.TermDays)
		}
	}
	return errs
}

// ValidIBAN checks an IBAN's length and ISO 13616 check digits (spaces
// removed).
func ValidIBAN(iban string) bool {
	iban = strings.ToUpper(strings.ReplaceAll(iban, " ", ""))
	if len(iban) < 15 || len(iban) > 34 {
		return false
	}
	if iban[:2] == "IT" && len(iban) != 27 {
		return false
	}
	r := iban[4:] + iban[:4]
	mod := 0
	for _, c := range r {
		switch {
		case c >= '0' && c <= '9':
			mod = (mod*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			mod = (mod*100 + int(c-'A'+10)) % 97
		default:
			return false
		}
	}
	return mod == 1
}

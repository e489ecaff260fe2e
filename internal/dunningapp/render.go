package dunningapp

import (
	"flag"
	"fmt"
	"io"

	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/notify"
	"github.com/incasso-io/incasso/internal/policy"
)

// render prints the letters of the configured policy (DUNNING_POLICY_FILE)
// with the configured templates (DUNNING_TEMPLATES_DIR) for sample
// invoices, so that ops can read a letter before enabling a stage.
func render(cfg Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dunning render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stage := fs.String("stage", "", "only this stage (default: every stage with a letter)")
	lang := fs.String("lang", "it", "language: it or en")
	company := fs.Int64("company", 0, "use this company's policy overrides")
	html := fs.Bool("html", false, "print the HTML alternative instead of the text")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *lang != "it" && *lang != "en" {
		return fmt.Errorf("render: -lang %q: want it or en", *lang)
	}
	pols := policy.Default()
	if cfg.PolicyFile != "" {
		var err error
		if pols, err = policy.Load(cfg.PolicyFile); err != nil {
			return err
		}
	}
	r, err := notify.NewRenderer(cfg.TemplatesDir)
	if err != nil {
		return err
	}
	p := pols.For(*company)
	found := false
	for i, s := range p.Stages {
		if (*stage != "" && s.Name != *stage) || s.Template == "handoff" {
			continue
		}
		found = true
		m := notify.Sample(s, p.Ordinal(i), *lang)
		m.Creditor = overlay(dunning.CreditorFrom(p.Creditor), m.Creditor)
		out, err := r.Render(m)
		if err != nil {
			return fmt.Errorf("render %s: %w", s.Name, err)
		}
		to := m.Client.Email
		if s.Channels[0] == policy.PEC {
			to = m.Client.PEC + " (PEC)"
		}
		fmt.Fprintf(stdout, "──── stage %s · template %s · %s · to %s\nSubject: %s\n\n", s.Name, s.Template, *lang, to, out.Subject)
		if *html {
			fmt.Fprintln(stdout, out.HTML)
		} else {
			fmt.Fprintln(stdout, out.Text)
		}
	}
	if !found {
		return fmt.Errorf("render: no stage %q with a letter in the policy", *stage)
	}
	return nil
}

// overlay is the policy's creditor block with what it leaves empty taken
// from the sample (as the service takes it from FIC, for name, VAT number
// and IBAN; the sample fills the rest so that nothing reads blank).
func overlay(conf, sample dunning.Creditor) dunning.Creditor {
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&conf.Name, sample.Name}, {&conf.VATNumber, sample.VATNumber}, {&conf.TaxCode, sample.TaxCode}, {&conf.Address, sample.Address},
		{&conf.Email, sample.Email}, {&conf.PEC, sample.PEC}, {&conf.Phone, sample.Phone}, {&conf.IBAN, sample.IBAN},
		{&conf.Bank, sample.Bank}, {&conf.Signature, sample.Signature},
	} {
		if *f.dst == "" {
			*f.dst = f.src
		}
	}
	return conf
}

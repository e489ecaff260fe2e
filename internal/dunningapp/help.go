package dunningapp

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// command is one CLI command, for `dunning help` and `-h`.
type command struct {
	name, args, what string
	flags            []string // "-flag value: meaning"
}

var commands = []command{
	{"run", "", "run the service (the default): consumers, timers, deliveries, the ops API and console", []string{"configuration from the environment: see README \"Configuration\""}},
	{"cases", "", "the open cases, most overdue first, with totals", []string{"-company N: one company", "-state S: active, escalated, paused, disputed, promised, held, closed", "-stage S: next stage", "-min-days N: at least N days overdue"}},
	{"show", "COMPANY INVOICE", "one case: amounts, next action, what needs attention, the timeline", nil},
	{"approvals", "", "the formal steps and catch-up reminders waiting for a person", []string{"-company N: one company"}},
	{"approve", "COMPANY INVOICE", "approve the step waiting for approval", []string{"-operator NAME: who (with the shared token)", "-reason TEXT"}},
	{"reject", "COMPANY INVOICE", "reject it: the case is paused", []string{"-operator NAME", "-reason TEXT"}},
	{"postpone", "COMPANY INVOICE", "ask again later", []string{"-until YYYY-MM-DD", "-operator NAME", "-reason TEXT"}},
	{"remind", "COMPANY INVOICE", "send a stage now (a formal step needs -stage named explicitly); says what went where", []string{"-stage S: the stage to send (default: the next one, if it is not formal)", "-channel C: email, pec or webhook only", "-operator NAME", "-reason TEXT"}},
	{"pause", "COMPANY INVOICE", "stop reminders", []string{"-until YYYY-MM-DD: resume by itself then", "-operator NAME", "-reason TEXT"}},
	{"resume", "COMPANY INVOICE", "start reminders again", []string{"-operator NAME", "-reason TEXT"}},
	{"dispute", "COMPANY INVOICE", "the client contests the invoice: no reminders", []string{"-operator NAME", "-reason TEXT"}},
	{"promise", "COMPANY INVOICE", "the client promised to pay by a date", []string{"-until YYYY-MM-DD", "-operator NAME", "-reason TEXT"}},
	{"writeoff", "COMPANY INVOICE", "close the case as uncollectable (admin)", []string{"-operator NAME", "-reason TEXT"}},
	{"preview", "", "what would be sent on a day (dry run), every company unless -company", []string{"-company N", "-date YYYY-MM-DD: default today"}},
	{"aging", "", "receivables aging and DSO, every company unless -company", []string{"-company N", "-date YYYY-MM-DD: default today"}},
	{"mode", "[live|shadow]", "a company's mode: show it, or set it (admin)", []string{"-company N (required)", "-operator NAME"}},
	{"render", "", "print a letter as it would go out, from the policy and sample data", []string{"-stage S", "-lang it|en", "-channel email|pec"}},
	{"operators", "add|list|disable|rotate ...", "the people who use the ops API and console, and their roles (talks to NATS)", nil},
	{"endpoints", "[verb] ...", "platforms receiving the events over HTTP (dunning endpoints help)", nil},
	{"whoami", "", "who the token belongs to", nil},
	{"deadletters", "", "messages given up on, with the reason", nil},
	{"help", "[COMMAND]", "this help, or one command's", nil},
}

// wantsHelp reports a -h, -help or --help among args.
func wantsHelp(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" })
}

// help prints every command, or one.
func help(w io.Writer, name string) error {
	if name != "" {
		i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
		if i < 0 {
			return fmt.Errorf("unknown command %q: dunning help lists them", name)
		}
		c := commands[i]
		fmt.Fprintf(w, "usage: dunning %s %s\n\n%s.\n", c.name, c.args, strings.ToUpper(c.what[:1])+c.what[1:])
		if len(c.flags) > 0 {
			fmt.Fprintln(w)
			for _, f := range c.flags {
				fmt.Fprintln(w, "  "+f)
			}
		}
		if c.name != "run" && c.name != "render" && c.name != "operators" {
			fmt.Fprintln(w, "\nTalks to the ops API: DUNNING_OPS_URL (default http://127.0.0.1:8081) and DUNNING_OPS_TOKEN.")
		}
		return nil
	}
	fmt.Fprintln(w, "dunning: payment reminders on Incasso's receivables events, and the CLI of its ops API.")
	fmt.Fprintln(w, "\nusage: dunning COMMAND [ARGS] [FLAGS]   (dunning help COMMAND, or COMMAND -h, for one)")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.what)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nTimes are Europe/Rome, amounts in euro. The console is on the ops address (/console).")
	return nil
}

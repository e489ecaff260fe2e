package notify_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/notify"
	"github.com/incasso-io/incasso/internal/policy"
)

// Every letter of the default policy, in both languages, says who the
// creditor is and how to pay, asks for what is due and nothing else, and
// reads right (issue #14, "letters that can be sent").
func TestLettersOfEveryStage(t *testing.T) {
	p := policy.Default().Default
	for _, m := range notify.Samples() {
		t.Run(m.Stage+"."+m.Language, func(t *testing.T) {
			r, err := notify.Render(m)
			if err != nil {
				t.Fatal(err)
			}
			all := r.Subject + "\n" + r.Text
			en := m.Language == "en"
			want := []string{"Alfa Forniture S.r.l.", "IT01234567890", "Via Roma 1, 20121 Milano (MI)", "Ufficio amministrazione",
				"IT60 X054 2811 1010 0000 0123 456", "118/A"}
			switch {
			case m.Template == "courtesy" && en:
				want = append(want, "€ 488.00", "Payment of invoice 118/A of 30/09/2026", "next installment due on 30/12/2026")
			case m.Template == "courtesy":
				want = append(want, "€ 488,00", "Saldo fattura n. 118/A del 30/09/2026", "rata successiva a scadere il 30/12/2026")
			case en:
				// 488.00 late on 118/A (its second installment is not due),
				// 1,220.00 on 131/A less a 292.80 credit note.
				want = append(want, "131/A", "€ 1,415.20", "€ 927.20", "net of credit notes: € 292.80", "(not yet due)", "Payment of invoices 118/A of 30/09/2026, 131/A of 15/10/2026")
			default:
				want = append(want, "131/A", "€ 1.415,20", "€ 927,20", "al netto delle note di credito: € 292,80", "(non ancora dovuta)", "Saldo fatture n. 118/A del 30/09/2026, 131/A del 15/10/2026")
			}
			if m.Template == "formal_notice" {
				if en {
					want = append(want, "within 15 days", "10.15%", "from 31/10/2026 to 01/12/2026", "Interest continues to accrue until payment", "€ 80.00 (€ 40.00 per invoice)")
				} else {
					want = append(want, "entro 15 giorni", "10,15%", "dal 31/10/2026 al 01/12/2026", "continuano a maturare fino all'effettivo pagamento", "€ 80,00 (€ 40,00 per fattura)")
				}
			}
			for _, w := range want {
				if !strings.Contains(all, w) {
					t.Errorf("lacks %q:\n%s", w, all)
				}
			}
			dont := []string{"<no value>", "%!", "€ 976", "€ 1.220,00", "€ 1,220.00", "  \n"}
			if m.Template == "formal_notice" {
				dont = append(dont, "già provveduto", "already paid") // a formal notice is not a courtesy
			}
			if en {
				dont = append(dont, "Gentile", "fattura")
			}
			for _, d := range dont {
				if strings.Contains(all, d) {
					t.Errorf("contains %q:\n%s", d, all)
				}
			}
			if !strings.Contains(r.HTML, "Rossi &amp; Figli") {
				t.Error("HTML not escaped")
			}
		})
	}
	// The second reminder is not the first one again.
	first, _ := notify.Render(notify.Sample(p.Stages[1], 1, "it"))
	second, _ := notify.Render(notify.Sample(p.Stages[2], 2, "it"))
	if first.Subject == second.Subject || first.Text == second.Text || !strings.Contains(second.Subject, "Secondo sollecito") {
		t.Errorf("first and second reminders:\n%s\n%s", first.Subject, second.Subject)
	}
	// No earlier reminder claimed when none was sent; one invoice is singular.
	m := notify.Sample(p.Stages[3], 1, "it")
	m.PriorContacts, m.Items = 0, m.Items[:1]
	r, _ := notify.Render(m)
	if strings.Contains(r.Text, "precedenti solleciti") || !strings.Contains(r.Text, "risulta tuttora insoluta la seguente fattura") || !strings.Contains(r.Subject, "fattura n. 118/A") {
		t.Errorf("formal notice with no earlier reminder, one invoice:\n%s\n%s", r.Subject, r.Text)
	}
	m.Clause1454 = true
	if r, _ := notify.Render(m); !strings.Contains(r.Text, "art. 1454 c.c.") {
		t.Error("no art. 1454 clause")
	}
}

// Templates are overridden from a directory; a broken one is refused at
// start with its file and line, and so is a file the renderer does not
// know.
func TestTemplatesDirectory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("reminder.it.txt", "{{define \"subject\"}}Promemoria Alfa {{.Numbers}}{{end}}\n{{define \"body\"}}Buongiorno {{.Client}}, dovete € {{.Total}}.\n{{template \"signature\" .}}{{end}}\n")
	r, err := notify.NewRenderer(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Render(notify.Sample(policy.Default().Default.Stages[1], 1, "it"))
	if err != nil || out.Subject != "Promemoria Alfa 118/A, 131/A" || !strings.Contains(out.Text, "dovete € 1.415,20") {
		t.Fatalf("override: %q %q %v", out.Subject, out.Text, err)
	}
	write("reminder.it.txt", "{{define \"subject\"}}x{{end}}\n{{define \"body\"}}\nline two\n{{.Totale}}\n{{end}}\n")
	if _, err := notify.NewRenderer(dir); err == nil || !strings.Contains(err.Error(), "reminder.it.txt:4") {
		t.Fatalf("a template naming an unknown field: %v, want its file and line", err)
	}
	write("reminder.it.txt", "{{define \"subject\"}}x{{end}}{{define \"body\"}}{{if}}{{end}}")
	if _, err := notify.NewRenderer(dir); err == nil || !strings.Contains(err.Error(), "reminder.it.txt:1") {
		t.Fatalf("a template that does not parse: %v", err)
	}
	os.Remove(filepath.Join(dir, "reminder.it.txt"))
	write("reminders.it.txt", "")
	if _, err := notify.NewRenderer(dir); err == nil || !strings.Contains(err.Error(), "unknown template file") {
		t.Fatalf("an unknown file: %v", err)
	}
}

// dropAfterData is an SMTP server that reads a whole message and drops the
// connection instead of answering it: the client cannot know whether it
// was accepted.
func dropAfterData(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				rd := bufio.NewReader(c)
				say := func(s string) { _, _ = c.Write([]byte(s + "\r\n")) }
				say("220 drop.example ESMTP")
				for {
					line, err := rd.ReadString('\n')
					if err != nil {
						return
					}
					cmd := strings.ToUpper(strings.TrimSpace(line))
					switch {
					case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
						say("250 drop.example")
					case strings.HasPrefix(cmd, "DATA"):
						say("354 go ahead")
						for {
							l, err := rd.ReadString('\n')
							if err != nil || l == ".\r\n" {
								return // the message is in; hang up without a word
							}
						}
					default:
						say("250 ok")
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// An SMTP connection dropped after the message was written is "possibly
// sent", never "nothing delivered" (issue #14: the next attempt sent a
// second copy).
func TestConnectionDroppedAfterDataIsPossiblySent(t *testing.T) {
	host, port, _ := net.SplitHostPort(dropAfterData(t))
	var p int
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	e := &notify.Email{Config: notify.SMTPConfig{Host: host, Port: p, From: "crediti@alfa.example", TLS: "none", Timeout: 5 * time.Second}}
	m := notify.Sample(policy.Default().Default.Stages[1], 1, "it")
	err := e.Send(context.Background(), m)
	if !errors.Is(err, dunning.ErrPossiblySent) {
		t.Fatalf("Send: %v, want ErrPossiblySent", err)
	}
}

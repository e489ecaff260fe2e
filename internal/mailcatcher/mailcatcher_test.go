package mailcatcher_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/mailcatcher"
	"github.com/incasso-io/incasso/internal/notify"
	"github.com/incasso-io/incasso/internal/policy"
)

// What Incasso sends by PEC, with a PDF, read in the catcher as a credit
// controller would: decoded (no quoted-printable =E2=82=AC), with From,
// To, the channel, Europe/Rome times, the text and HTML parts and the
// attachment.
func TestCatcherShowsWhatAPersonReads(t *testing.T) {
	c := &mailcatcher.Catcher{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.ServeSMTP(ln) }()
	defer c.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	arch := &archive{}
	e := &notify.Email{PEC: true, Archive: arch, Config: notify.SMTPConfig{Host: "127.0.0.1", Port: port, From: "crediti@pec.alfa.example", TLS: "none", Timeout: 5 * time.Second}}
	m := notify.Sample(policy.Default().Default.Stages[1], 1, "it")
	m.Channel = policy.PEC
	m.Creditor.FromName = "Alfa S.r.l. – Ufficio crediti"
	pdf := []byte("%PDF-1.4\n% sample invoice\n")
	m.Attachments = []dunning.Attachment{{Name: "Fattura 42-A.pdf", ContentType: "application/pdf", Data: pdf}}
	if err := e.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	msgs := c.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	// The letter is archived as it went out.
	if len(arch.got) != 1 || arch.got[0].Channel != "pec" || arch.got[0].To != m.Client.PEC || arch.got[0].Subject != msgs[0].Subject || !strings.Contains(arch.got[0].Text, "€") || arch.got[0].HTML == "" {
		t.Errorf("archived %+v", arch.got)
	}
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	get := func(path string) (string, http.Header) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		return string(b), resp.Header
	}
	list, _ := get("/")
	for _, want := range []string{"PEC", "Alfa S.r.l. – Ufficio crediti", m.Client.PEC, "Europe/Rome", msgs[0].Received.In(rome(t)).Format("02/01/2006 15:04")} {
		if !strings.Contains(list, want) {
			t.Errorf("list lacks %q", want)
		}
	}
	page, _ := get("/messages/1")
	for _, want := range []string{"€ ", "Fattura 42-A.pdf", "application/pdf", "PEC", "crediti@pec.alfa.example", `sandbox src="/messages/1/html"`} {
		if !strings.Contains(page, want) {
			t.Errorf("message page lacks %q", want)
		}
	}
	if strings.Contains(page, "=E2=82=AC") || strings.Contains(page, "=\r\n") || strings.Contains(page, "Content-Transfer-Encoding") {
		t.Errorf("message page shows raw MIME:\n%.2000s", page)
	}
	html, h := get("/messages/1/html")
	if !strings.Contains(html, "<") || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("HTML part: %q, CSP %q", html[:min(80, len(html))], h.Get("Content-Security-Policy"))
	}
	att, ah := get("/messages/1/attachments/0")
	if att != string(pdf) || ah.Get("Content-Type") != "application/pdf" || !strings.Contains(ah.Get("Content-Disposition"), "Fattura 42-A.pdf") {
		t.Errorf("attachment: %q %v", att, ah)
	}
}

func rome(t *testing.T) *time.Location {
	l, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type archive struct{ got []notify.Letter }

func (a *archive) Put(_ context.Context, l notify.Letter) error { a.got = append(a.got, l); return nil }

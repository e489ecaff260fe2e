package ficsim_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
)

func call(t *testing.T, method, url, token, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: body is not JSON: %s", method, url, raw)
		}
	}
	return resp.StatusCode, resp.Header, m
}

func TestDeterministicSeed(t *testing.T) {
	a, _ := ficsim.New(ficsim.Config{Seed: 42, Companies: 2, Invoices: 50, Now: fixedNow})
	b, _ := ficsim.New(ficsim.Config{Seed: 42, Companies: 2, Invoices: 50, Now: fixedNow})
	c, _ := ficsim.New(ficsim.Config{Seed: 43, Companies: 2, Invoices: 50, Now: fixedNow})
	da, _ := a.Documents(a.CompanyIDs()[1])
	db, _ := b.Documents(b.CompanyIDs()[1])
	dc, _ := c.Documents(c.CompanyIDs()[1])
	if !reflect.DeepEqual(da, db) {
		t.Error("same seed, different data")
	}
	if reflect.DeepEqual(da, dc) {
		t.Error("different seeds, same data")
	}
}

func fixedNow() time.Time { return time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC) }

func TestRealisticData(t *testing.T) {
	sim, _ := ficsim.New(ficsim.Config{Seed: 1, Companies: 1, Invoices: 400, Now: fixedNow})
	docs, _ := sim.Documents(sim.CompanyIDs()[0])
	var overdue, dueSoon, paid, credit, multi, pa int
	for _, d := range docs {
		e := d.Client
		if e.CountryISO == "IT" {
			if !ficsim.ValidVATNumber(e.VATNumber) {
				t.Errorf("invalid VAT number %v", e.VATNumber)
			}
			if !ficsim.ValidTaxCode(e.TaxCode) {
				t.Errorf("invalid tax code %v", e.TaxCode)
			}
			if !strings.Contains(e.PEC, "pec") {
				t.Errorf("PEC %v", e.PEC)
			}
		}
		if d.Type == "credit_note" {
			credit++
			continue
		}
		if d.SplitPayment {
			pa++
		}
		pl := d.Payments
		if len(pl) > 1 {
			multi++
		}
		for _, p := range pl {
			due := p.DueDate
			switch {
			case p.Status == "paid":
				paid++
			case due < "2026-11-24":
				overdue++
			case due <= "2026-11-27":
				dueSoon++
			}
		}
	}
	t.Logf("overdue %d due-soon %d paid %d credit %d multi %d pa %d", overdue, dueSoon, paid, credit, multi, pa)
	if overdue == 0 || paid == 0 || credit == 0 || multi == 0 || pa == 0 {
		t.Error("seed lacks variety")
	}
	if !ficsim.ValidVATNumber("00743110157") || ficsim.ValidVATNumber("00743110158") {
		t.Error("VAT check digit")
	}
	if !ficsim.ValidTaxCode("RSSMRA85T10A562S") || ficsim.ValidTaxCode("RSSMRA85T10A562T") {
		t.Error("tax code check char")
	}
}

func TestListEnvelopeAndValidation(t *testing.T) {
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 1, Companies: 1, Invoices: 120})
	tok := sim.Token()
	base := fmt.Sprintf("%s/c/%d/issued_documents", srv.URL, sim.CompanyIDs()[0])
	code, h, m := call(t, "GET", base+"?type=invoice&page=2&per_page=50", tok, "")
	if code != 200 || m["current_page"].(float64) != 2 || m["last_page"].(float64) != 3 || m["total"].(float64) != 120 ||
		m["from"].(float64) != 51 || m["to"].(float64) != 100 || m["per_page"].(float64) != 50 {
		t.Fatalf("envelope: %d %v", code, m)
	}
	if !strings.Contains(m["next_page_url"].(string), "page=3") || !strings.Contains(m["prev_page_url"].(string), "page=1") {
		t.Errorf("page urls: %v %v", m["next_page_url"], m["prev_page_url"])
	}
	if h.Get("RateLimit-HourlyLimit") != "1000" || h.Get("RateLimit-MonthlyRemaining") == "" {
		t.Errorf("quota headers: %v", h)
	}
	// Basic fieldset omits payments.
	if d := m["data"].([]any)[0].(map[string]any); d["payments_list"] != nil {
		t.Error("basic fieldset returned payments_list")
	}
	_, _, m = call(t, "GET", base+"?type=invoice", tok, "")
	if m["per_page"].(float64) != 50 {
		t.Errorf("default per_page %v", m["per_page"])
	}
	for q, want := range map[string]int{
		"per_page=5":                          422, // type required
		"type=invoice&per_page=101":           422,
		"type=nope":                           422,
		"type=invoice&page=0":                 422,
		"type=invoice&fieldset=huge":          422,
		"type=invoice&sort=updated_at":        422,
		"type=invoice&q=date%20%3E":           400,
		"type=invoice&q=updated_at%3D%271%27": 400,
	} {
		if code, _, _ := call(t, "GET", base+"?"+q, tok, ""); code != want {
			t.Errorf("%q: got %d, want %d", q, code, want)
		}
	}
	if code, _, _ := call(t, "GET", base+"?type=invoice", "wrong", ""); code != 401 {
		t.Errorf("bad token: %d", code)
	}
	if code, _, _ := call(t, "GET", srv.URL+"/c/999/issued_documents?type=invoice", tok, ""); code != 403 {
		t.Errorf("unknown company: %d", code)
	}
}

func TestQuotaResponses(t *testing.T) {
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 1, Companies: 1, Invoices: 5,
		Quotas: ficsim.QuotaConfig{Hourly: 100, ShortTerm: 2, ShortWindow: time.Minute}})
	url := fmt.Sprintf("%s/c/%d/bin/issued_documents", srv.URL, sim.CompanyIDs()[0])
	call(t, "GET", url, sim.Token(), "")
	call(t, "GET", url, sim.Token(), "")
	code, h, _ := call(t, "GET", url, sim.Token(), "")
	if code != 429 || h.Get("Retry-After") == "" {
		t.Errorf("short-term: %d %v", code, h)
	}
	sim.SetQuotas(ficsim.QuotaConfig{Hourly: 1, Monthly: 1000})
	call(t, "GET", url, sim.Token(), "")
	code, h, m := call(t, "GET", url, sim.Token(), "")
	if code != 403 || h.Get("Retry-After") == "" || h.Get("RateLimit-HourlyRemaining") != "0" || m["error"] == nil {
		t.Errorf("hourly: %d %v %v", code, h, m)
	}
	sim.SetQuotas(ficsim.QuotaConfig{Monthly: 1})
	call(t, "GET", url, sim.Token(), "")
	code, h, _ = call(t, "GET", url, sim.Token(), "")
	ra := h.Get("Retry-After")
	if code != 403 || ra == "" || ra == "0" {
		t.Errorf("monthly: %d retry-after %q", code, ra)
	}
}

func TestAdminAPI(t *testing.T) {
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 1, Companies: 1, Invoices: 5})
	cid := sim.CompanyIDs()[0]
	base := fmt.Sprintf("%s/_sim/companies/%d/documents", srv.URL, cid)
	code, _, m := call(t, "POST", base, "", `{"amount_net":"1000.00","vat_rate":22,"installments":2,"due_dates":["2026-12-31","2027-01-31"]}`)
	if code != 200 {
		t.Fatalf("create: %d %v", code, m)
	}
	d := m["data"].(map[string]any)
	id := int64(d["id"].(float64))
	if d["amount_gross"].(float64) != 1220 || len(d["payments_list"].([]any)) != 2 {
		t.Fatalf("created: %v", d)
	}
	code, _, m = call(t, "POST", fmt.Sprintf("%s/%d/pay", base, id), "", `{"installment":0,"amount":"100.00","paid_date":"2026-11-20"}`)
	pl := m["data"].(map[string]any)["payments_list"].([]any)
	if code != 200 || len(pl) != 3 || pl[0].(map[string]any)["status"] != "paid" || pl[1].(map[string]any)["amount"].(float64) != 510 {
		t.Fatalf("partial pay: %d %v", code, pl)
	}
	code, _, m = call(t, "POST", fmt.Sprintf("%s/%d/reverse", base, id), "", `{"installment":0}`)
	if code != 200 || m["data"].(map[string]any)["payments_list"].([]any)[0].(map[string]any)["status"] != "reversed" {
		t.Fatalf("reverse: %d %v", code, m)
	}
	code, _, _ = call(t, "POST", fmt.Sprintf("%s/%d/due_date", base, id), "", `{"installment":1,"due_date":"2027-03-01"}`)
	if code != 200 {
		t.Fatalf("due date: %d", code)
	}
	code, _, _ = call(t, "PATCH", fmt.Sprintf("%s/%d", base, id), "", `{"subject":"nuovo oggetto"}`)
	if code != 200 {
		t.Fatalf("patch: %d", code)
	}
	for _, bad := range []struct{ method, url, body string }{
		{"POST", fmt.Sprintf("%s/%d/pay", base, id), `{"installment":9}`},
		{"POST", fmt.Sprintf("%s/%d/pay", base, id), `{"bogus":1}`},
		{"POST", fmt.Sprintf("%s/%d/due_date", base, id), `{"installment":0,"due_date":"31/12/2026"}`},
		{"POST", base, `{"amount_net":"-5"}`},
		{"PUT", srv.URL + "/_sim/faults", `{"error_ratio":2}`},
		{"POST", srv.URL + "/_sim/clock", `{"advance":"soon"}`},
	} {
		if code, _, _ := call(t, bad.method, bad.url, "", bad.body); code != 400 {
			t.Errorf("%s %s %s: got %d, want 400", bad.method, bad.url, bad.body, code)
		}
	}
	if code, _, _ := call(t, "DELETE", fmt.Sprintf("%s/%d", base, id), "", ""); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	if code, _, _ := call(t, "DELETE", fmt.Sprintf("%s/%d", base, id), "", ""); code != 404 {
		t.Errorf("delete twice: %d", code)
	}
	_, _, m = call(t, "GET", fmt.Sprintf("%s/c/%d/bin/issued_documents", srv.URL, cid), sim.Token(), "")
	if n := len(m["data"].([]any)); n != 1 {
		t.Errorf("bin has %d", n)
	}
	_, _, m = call(t, "GET", srv.URL+"/_sim/stats", "", "")
	if m["total"].(float64) < 1 {
		t.Errorf("stats: %v", m)
	}
	code, _, m = call(t, "POST", srv.URL+"/_sim/clock", "", `{"advance":"48h"}`)
	if code != 200 || m["now"] == "" {
		t.Errorf("clock: %d %v", code, m)
	}
	_, _, m = call(t, "GET", srv.URL+"/_sim/webhook_key", "", "")
	if !strings.Contains(m["pem"].(string), "PUBLIC KEY") {
		t.Errorf("webhook key: %v", m)
	}
}

func TestOAuthErrors(t *testing.T) {
	_, srv := ficsimtest.Start(t, ficsim.Config{Seed: 1, Companies: 1, Invoices: 5, RedirectURLs: []string{"http://127.0.0.1/cb"}})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for q, want := range map[string]int{
		"response_type=code&client_id=ficsim-client&redirect_uri=http://127.0.0.1/cb&scope=settings:r&state=x": 302,
		"response_type=code&client_id=other&redirect_uri=http://127.0.0.1/cb&scope=settings:r":                 400,
		"response_type=code&client_id=ficsim-client&redirect_uri=http://evil/cb&scope=settings:r":              400,
		"response_type=code&client_id=ficsim-client&redirect_uri=http://127.0.0.1/cb&scope=root:a":             400,
		"response_type=token&client_id=ficsim-client&redirect_uri=http://127.0.0.1/cb&scope=settings:r":        400,
	} {
		resp, err := noFollow.Get(srv.URL + "/oauth/authorize?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: got %d, want %d", q, resp.StatusCode, want)
		}
	}
	code, _, m := call(t, "POST", srv.URL+"/oauth/token", "", `{"grant_type":"authorization_code","client_id":"ficsim-client","client_secret":"ficsim-secret"}`)
	if code != 400 || m["error"] != "invalid_request" {
		t.Errorf("missing code: %d %v", code, m)
	}
	code, _, m = call(t, "POST", srv.URL+"/oauth/token", "", `{"grant_type":"refresh_token","client_id":"ficsim-client","client_secret":"nope","refresh_token":"r/x"}`)
	if code != 401 || m["error"] != "invalid_client" {
		t.Errorf("bad secret: %d %v", code, m)
	}
}

// TestStrictByDefault: the sandbox is never kinder than FIC. Each row is a
// behaviour of real FIC that an earlier sandbox hid; Lenient (or the named
// flag) turns off only the undocumented ones.
func TestStrictByDefault(t *testing.T) {
	for _, lenient := range []bool{false, true} {
		t.Run(fmt.Sprintf("lenient=%v", lenient), func(t *testing.T) {
			sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 1, Companies: 1, Invoices: 5, Lenient: lenient})
			tok, cid := sim.Token(), sim.CompanyIDs()[0]
			base := fmt.Sprintf("%s/c/%d", srv.URL, cid)

			// fields=payments_list alone: 500 on FIC (fattureincloud/api#325).
			code, _, m := call(t, "GET", base+"/issued_documents?type=invoice&fields=payments_list", tok, "")
			if want := map[bool]int{false: 500, true: 200}[lenient]; code != want {
				t.Errorf("fields=payments_list: %d %v, want %d", code, m, want)
			}
			if code, _, _ := call(t, "GET", base+"/issued_documents?type=invoice&fields=id,payments_list", tok, ""); code != 200 {
				t.Errorf("fields=id,payments_list: %d", code)
			}

			// A refused token: OAuth-shaped body (error is a string).
			_, _, m = call(t, "GET", base+"/issued_documents?type=invoice", "expired-token", "")
			_, isString := m["error"].(string)
			if isString == lenient {
				t.Errorf("401 body for a refused token: %v", m)
			}
			if !lenient && m["error_description"] == nil {
				t.Errorf("OAuth 401 without error_description: %v", m)
			}
			// No token at all: FIC's REST shape.
			if _, _, m = call(t, "GET", base+"/issued_documents?type=invoice", "", ""); m["error"].(map[string]any)["message"] != "Unauthorized." {
				t.Errorf("401 body without a token: %v", m)
			}

			// http:// sinks are refused whatever Lenient says (FIC documents
			// HTTPS sinks); AllowHTTPSinks is a separate, explicit switch.
			body := `{"data":{"sink":"http://127.0.0.1:9/hook","types":["it.fattureincloud.webhooks.issued_documents.invoices.create"]}}`
			if code, _, m := call(t, "POST", base+"/subscriptions", tok, body); code != 422 {
				t.Errorf("http sink: %d %v, want 422", code, m)
			}

			// The official grammar: mixed-case keywords and signed numbers fail.
			for _, q := range []string{"number%20%3E%201%20And%20number%20%3C%209", "amount_gross%20%3E%20-1"} {
				if code, _, _ := call(t, "GET", base+"/issued_documents?type=invoice&q="+q, tok, ""); code != 400 {
					t.Errorf("q=%s: %d, want 400", q, code)
				}
			}
		})
	}
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 1, Companies: 1, Invoices: 5, AllowHTTPSinks: true})
	body := `{"data":{"sink":"http://127.0.0.1:9/hook","types":["it.fattureincloud.webhooks.issued_documents.invoices.create"]}}`
	if code, _, m := call(t, "POST", fmt.Sprintf("%s/c/%d/subscriptions", srv.URL, sim.CompanyIDs()[0]), sim.Token(), body); code != 200 && code != 201 {
		t.Errorf("http sink with AllowHTTPSinks: %d %v", code, m)
	}
}

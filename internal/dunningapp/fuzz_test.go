package dunningapp

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/calendar"
	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/memstore"
	"github.com/incasso-io/incasso/internal/policy"
)

// FuzzOpsAPI: malformed paths, queries and bodies get a 4xx, never a 5xx
// or a panic.
func FuzzOpsAPI(f *testing.F) {
	// The stores are the memory ones (they pass the KV stores' conformance
	// suites): the fuzzer is after the handlers, and runs faster for it.
	cal, _ := calendar.New("", "")
	eng := &dunning.Engine{Cases: &memstore.Cases{}, Clients: &memstore.Clients{}, Outbox: &memstore.Outbox{}, Audit: &memstore.Audit{},
		Policies: policy.Default(), Calendar: cal}
	h := (&opsAPI{eng: eng, token: "tok", now: time.Now}).handler()
	f.Add("GET", "/v1/cases?company=abc&min_days_overdue=-1", "")
	f.Add("POST", "/v1/cases/1/2/pause", `{"operator":"x","until":"2026-13-01"}`)
	f.Add("POST", "/v1/cases/0/-1/remind", `{`)
	f.Add("GET", "/v1/aging?company=1&date=yesterday", "")
	f.Add("POST", "/v1/cases/1/2/writeoff", `{"operator":"x","extra":1}`)
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if method != "GET" && method != "POST" {
			method = "POST"
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://ops"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer tok")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: HTTP %d %s", method, path, body, rec.Code, rec.Body.String())
		}
	})
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	if _, err := ParseConfig([]string{"SMTP_PORT=twenty-five"}); err == nil || !strings.Contains(err.Error(), "SMTP_PORT") {
		t.Errorf("got %v", err)
	}
}

package ficsim_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/fic/filter"
	"github.com/incasso-io/incasso/internal/ficsim"
)

// specValidator checks every request the client sends and every response
// ficsim gives against the official OpenAPI spec.
type specValidator struct {
	router  routers.Router
	next    http.Handler
	mu      sync.Mutex
	checked map[string]int
	errs    []string
}

func (v *specValidator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/oauth/") || strings.HasPrefix(r.URL.Path, "/_sim/") {
		v.next.ServeHTTP(w, r) // not part of the REST spec
		return
	}
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	route, params, err := v.router.FindRoute(r)
	if err != nil {
		v.fail("%s %s: no route in spec: %v", r.Method, r.URL.Path, err)
		v.next.ServeHTTP(w, r)
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	// Requests marked invalid on purpose exercise ficsim's error responses.
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil && r.Header.Get("X-Expect-Invalid") == "" {
		v.fail("request %s %s: %v", r.Method, r.URL, err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	v.next.ServeHTTP(rec, r)
	res := rec.Result()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode < 500 {
		rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
			Body: io.NopCloser(bytes.NewReader(out)), Options: &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true}}
		if err := openapi3filter.ValidateResponse(r.Context(), rin); err != nil {
			v.fail("response %d to %s %s: %v", res.StatusCode, r.Method, r.URL, err)
		}
	}
	v.mu.Lock()
	v.checked[route.Operation.OperationID+fmt.Sprintf(" %d", res.StatusCode)]++
	v.mu.Unlock()
	for k, vs := range res.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(out)
}

func (v *specValidator) fail(f string, a ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	msg := fmt.Sprintf(f, a...)
	if len(msg) > 1500 {
		msg = msg[:1500] + "…"
	}
	v.errs = append(v.errs, msg)
}

// TestConformance validates ficsim's responses and the client's requests
// against the official spec, read from FIC_OPENAPI_SPEC.
func TestConformance(t *testing.T) {
	path := os.Getenv("FIC_OPENAPI_SPEC")
	if path == "" {
		t.Skip("FIC_OPENAPI_SPEC is not set: skipping the OpenAPI conformance test (set it to the path of fattureincloud-openapi.yaml)")
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		t.Fatalf("load spec %s: %v", path, err)
	}
	sim, err := ficsim.New(ficsim.Config{Seed: 3, Companies: 1, Invoices: 230})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	v := &specValidator{next: sim.Handler(), checked: map[string]int{}}
	srv := httptest.NewServer(v)
	defer srv.Close()
	doc.Servers = openapi3.Servers{{URL: srv.URL}}
	if v.router, err = gorillamux.NewRouter(doc); err != nil {
		t.Fatalf("router: %v", err)
	}

	c, err := fic.New(fic.Config{BaseURL: srv.URL, RetryBase: time.Millisecond, Quotas: fic.NewQuotas(fic.Limits{Disabled: true}, nil)}, fic.StaticToken(sim.Token()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cid := sim.CompanyIDs()[0]
	if _, err := c.ListUserCompanies(ctx); err != nil {
		t.Fatal(err)
	}
	var firstID int64
	for _, opt := range []fic.ListOptions{
		{Type: fic.TypeInvoice},
		{Type: fic.TypeCreditNote},
		{Type: fic.TypeInvoice, Fields: fic.DetailedFields, Query: filter.Where("next_due_date", filter.IsNotNull, nil)},
		{Type: fic.TypeInvoice, Fieldset: "basic", Sort: "-date", PerPage: 50,
			Query: filter.And{filter.Where("date", filter.Gte, "2026-01-01"), filter.Where("entity.name", filter.Contains, "l'")}},
	} {
		for d, err := range c.ListIssuedDocuments(ctx, cid, opt) {
			if err != nil {
				t.Fatalf("list %+v: %v", opt, err)
			}
			if firstID == 0 {
				firstID = d.ID
			}
		}
	}
	if _, err := c.GetIssuedDocument(ctx, cid, firstID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetIssuedDocument(ctx, cid, 1); err == nil {
		t.Fatal("want 404")
	}
	if err := sim.DeleteDocument(cid, firstID); err != nil {
		t.Fatal(err)
	}
	if bin, err := c.ListBinIssuedDocuments(ctx, cid); err != nil || len(bin) != 1 {
		t.Fatalf("bin: %v %v", bin, err)
	}
	sub, _, err := c.CreateSubscription(ctx, cid, fic.Subscription{Sink: "https://incasso.example.com/webhooks/fic", Types: fic.ReceivablesEventTypes})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListSubscriptions(ctx, cid); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSubscription(ctx, cid, sub.ID); err != nil {
		t.Fatal(err)
	}
	sub.Types = fic.ReceivablesEventTypes[:3]
	if _, _, err := c.ModifySubscription(ctx, cid, sub); err != nil {
		t.Fatal(err)
	}
	if err := c.VerifySubscription(ctx, cid, sub.ID, "query"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSubscription(ctx, cid, sub.ID); err != nil {
		t.Fatal(err)
	}
	// Error responses are checked too.
	for _, q := range []string{"type=invoice&per_page=500", "per_page=5"} {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/c/%d/issued_documents?%s", srv.URL, cid, q), nil)
		req.Header.Set("Authorization", "Bearer "+sim.Token())
		req.Header.Set("X-Expect-Invalid", "1")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnprocessableEntity {
				t.Errorf("%s: got %d, want 422", q, resp.StatusCode)
			}
		}
	}
	for _, e := range v.errs {
		t.Error(e)
	}
	t.Logf("operations validated: %v", v.checked)
	if len(v.checked) < 10 {
		t.Errorf("only %d operation/status pairs validated", len(v.checked))
	}
}

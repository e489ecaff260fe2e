package fic_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/fic"
)

const secretToken = "a/super-secret-token-value"

// scripted serves the given responses in order, then 200s.
func scripted(t *testing.T, steps ...func(w http.ResponseWriter)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i < len(steps) {
			steps[i](w)
			return
		}
		w.Header().Set("RateLimit-HourlyRemaining", "900")
		w.Header().Set("RateLimit-HourlyLimit", "1000")
		w.Header().Set("RateLimit-MonthlyRemaining", "39000")
		w.Header().Set("RateLimit-MonthlyLimit", "40000")
		fmt.Fprint(w, `{"data": {"id": 5, "amount_gross": 10}}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func status(code int, retryAfter string, body string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
}

func newClient(t *testing.T, base string, creds fic.Credentials, now func() time.Time) *fic.Client {
	t.Helper()
	c, err := fic.New(fic.Config{BaseURL: base, RetryBase: time.Millisecond, MaxRetryWait: 2 * time.Second, Now: now,
		Quotas: fic.NewQuotas(fic.Limits{Disabled: true}, now)}, creds)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRetries(t *testing.T) {
	ctx := context.Background()
	t.Run("429 then OK honours Retry-After seconds", func(t *testing.T) {
		srv, n := scripted(t, status(429, "1", `{"error":{"message":"Too Many Attempts."}}`))
		c := newClient(t, srv.URL, fic.StaticToken(secretToken), nil)
		start := time.Now()
		if _, err := c.GetIssuedDocument(ctx, 1, 5); err != nil {
			t.Fatal(err)
		}
		if n.Load() != 2 {
			t.Errorf("requests: got %d, want 2", n.Load())
		}
		if waited := time.Since(start); waited < 900*time.Millisecond {
			t.Errorf("did not wait for Retry-After: %v", waited)
		}
	})
	t.Run("Retry-After as HTTP date", func(t *testing.T) {
		at := time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
		srv, n := scripted(t, status(503, at, ``))
		c := newClient(t, srv.URL, fic.StaticToken(secretToken), nil)
		start := time.Now()
		if _, err := c.GetIssuedDocument(ctx, 1, 5); err != nil {
			t.Fatal(err)
		}
		if n.Load() != 2 || time.Since(start) < 500*time.Millisecond {
			t.Errorf("requests %d after %v", n.Load(), time.Since(start))
		}
	})
	t.Run("5xx burst recovers", func(t *testing.T) {
		srv, n := scripted(t, status(500, "", ``), status(502, "", ``), status(503, "", ``))
		c := newClient(t, srv.URL, fic.StaticToken(secretToken), nil)
		if _, err := c.GetIssuedDocument(ctx, 1, 5); err != nil {
			t.Fatal(err)
		}
		if n.Load() != 4 {
			t.Errorf("requests: got %d, want 4", n.Load())
		}
	})
	t.Run("5xx exhausts retries", func(t *testing.T) {
		srv, n := scripted(t, status(500, "", ``), status(500, "", ``), status(500, "", ``), status(500, "", ``), status(500, "", ``), status(500, "", ``))
		c := newClient(t, srv.URL, fic.StaticToken(secretToken), nil)
		_, err := c.GetIssuedDocument(ctx, 1, 5)
		if !errors.Is(err, fic.ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
		if n.Load() != 5 {
			t.Errorf("requests: got %d, want 5 (1 + 4 retries)", n.Load())
		}
	})
	t.Run("403 with Retry-After is a quota error, not retried", func(t *testing.T) {
		now := time.Date(2026, 11, 24, 10, 20, 0, 0, time.UTC)
		srv, n := scripted(t, status(403, "2400", `{"error":{"message":"limite superato"}}`))
		c := newClient(t, srv.URL, fic.StaticToken(secretToken), func() time.Time { return now })
		_, err := c.GetIssuedDocument(ctx, 77, 5)
		var qe *fic.QuotaError
		if !errors.As(err, &qe) || !errors.Is(err, fic.ErrQuotaExhausted) {
			t.Fatalf("got %v, want *QuotaError", err)
		}
		if want := now.Add(40 * time.Minute); !qe.ResetAt.Equal(want) || qe.CompanyID != 77 {
			t.Errorf("ResetAt %v company %d, want %v 77", qe.ResetAt, qe.CompanyID, want)
		}
		if n.Load() != 1 {
			t.Errorf("requests: got %d, want 1", n.Load())
		}
		// The company is paused: no request leaves until the reset.
		if _, err := c.GetIssuedDocument(ctx, 77, 5); !errors.Is(err, fic.ErrQuotaExhausted) || n.Load() != 1 {
			t.Errorf("paused company: got %v after %d requests", err, n.Load())
		}
		if got := c.Quota(77).PausedUntil; !got.Equal(now.Add(40 * time.Minute)) {
			t.Errorf("PausedUntil: got %v", got)
		}
		// Other companies go on.
		if _, err := c.GetIssuedDocument(ctx, 78, 5); err != nil {
			t.Errorf("other company: %v", err)
		}
	})
	t.Run("403 without Retry-After is permanent", func(t *testing.T) {
		srv, n := scripted(t, status(403, "", `{"error":{"message":"no scope","code":"NO_PERMISSION"}}`))
		c := newClient(t, srv.URL, fic.StaticToken(secretToken), nil)
		_, err := c.GetIssuedDocument(ctx, 1, 5)
		var ae *fic.APIError
		if !errors.Is(err, fic.ErrForbidden) || !errors.As(err, &ae) || ae.Code != "NO_PERMISSION" || ae.Status != 403 {
			t.Fatalf("got %v", err)
		}
		if n.Load() != 1 {
			t.Errorf("requests: got %d, want 1", n.Load())
		}
	})
	t.Run("404 and 422", func(t *testing.T) {
		srv, _ := scripted(t, status(404, "", `{"error":{"message":"Not found"}}`), status(422, "", `{"error":{"message":"bad","validation_result":{"x":["y"]}}}`))
		c := newClient(t, srv.URL, fic.StaticToken(secretToken), nil)
		if _, err := c.GetIssuedDocument(ctx, 1, 5); !errors.Is(err, fic.ErrNotFound) {
			t.Errorf("got %v, want ErrNotFound", err)
		}
		if _, err := c.GetIssuedDocument(ctx, 1, 5); !errors.Is(err, fic.ErrInvalidRequest) {
			t.Errorf("got %v, want ErrInvalidRequest", err)
		}
	})
	t.Run("quota headers recorded", func(t *testing.T) {
		srv, _ := scripted(t)
		c := newClient(t, srv.URL, fic.StaticToken(secretToken), nil)
		if _, err := c.GetIssuedDocument(ctx, 9, 5); err != nil {
			t.Fatal(err)
		}
		q := c.Quota(9)
		if q.HourlyRemaining != 900 || q.HourlyLimit != 1000 || q.MonthlyRemaining != 39000 || q.MonthlyLimit != 40000 {
			t.Errorf("got %+v", q)
		}
	})
}

// refresher counts refreshes and hands out new tokens.
type refresher struct {
	tok     string
	n       int
	failErr error
}

func (r *refresher) Token(context.Context) (string, error) { return r.tok, nil }
func (r *refresher) Refresh(context.Context) (string, error) {
	r.n++
	if r.failErr != nil {
		return "", r.failErr
	}
	r.tok = fmt.Sprintf("a/fresh-%d", r.n)
	return r.tok, nil
}

func TestUnauthorized(t *testing.T) {
	ctx := context.Background()
	t.Run("401 refreshes once then succeeds", func(t *testing.T) {
		var mu sync.Mutex
		var seen []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Header.Get("Authorization"))
			mu.Unlock()
			if r.Header.Get("Authorization") != "Bearer a/fresh-1" {
				w.WriteHeader(401)
				return
			}
			fmt.Fprint(w, `{"data":{"id":5}}`)
		}))
		defer srv.Close()
		cr := &refresher{tok: "a/old"}
		c := newClient(t, srv.URL, cr, nil)
		if _, err := c.GetIssuedDocument(ctx, 1, 5); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if cr.n != 1 || len(seen) != 2 {
			t.Errorf("refreshes %d requests %v", cr.n, seen)
		}
	})
	t.Run("401 twice is ErrUnauthorized", func(t *testing.T) {
		srv, n := scripted(t, status(401, "", `{"error":{"message":"Unauthenticated."}}`), status(401, "", ``))
		cr := &refresher{tok: "a/old"}
		c := newClient(t, srv.URL, cr, nil)
		_, err := c.GetIssuedDocument(ctx, 1, 5)
		if !errors.Is(err, fic.ErrUnauthorized) || n.Load() != 2 || cr.n != 1 {
			t.Errorf("got %v after %d requests, %d refreshes", err, n.Load(), cr.n)
		}
	})
	t.Run("manual token 401 is final and the token is not in the error", func(t *testing.T) {
		srv, n := scripted(t, status(401, "", `{"error":{"message":"Unauthenticated."}}`))
		c := newClient(t, srv.URL, fic.StaticToken(secretToken), nil)
		_, err := c.GetIssuedDocument(ctx, 1, 5)
		if !errors.Is(err, fic.ErrUnauthorized) || n.Load() != 1 {
			t.Fatalf("got %v after %d requests", err, n.Load())
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("token leaked into error: %v", err)
		}
	})
}

func TestMalformedResponses(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("page") {
		case "1":
			fmt.Fprint(w, `{"current_page":1,"last_page":2,"per_page":100,"total":3,"data":[{"id":1,"amount_gross":1},{"id":2,"amount_gross":"x"}]}`)
		case "2":
			fmt.Fprint(w, `{"current_page":1,"last_page":2,"data":[]}`) // wrong page
		}
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, fic.StaticToken(secretToken), nil)
	var ok, bad int
	var final error
	for d, err := range c.ListIssuedDocuments(ctx, 1, fic.ListOptions{Type: fic.TypeInvoice}) {
		switch {
		case err == nil:
			ok++
			_ = d
		case errors.Is(err, fic.ErrMalformed) && strings.Contains(err.Error(), "document 2"):
			bad++
		default:
			final = err
		}
	}
	if ok != 1 || bad != 1 {
		t.Errorf("ok %d bad %d", ok, bad)
	}
	if !errors.Is(final, fic.ErrMalformed) || !strings.Contains(final.Error(), "page 2") {
		t.Errorf("final error: %v", final)
	}
}

// A 403 is a quota exhaustion only with evidence of one: the spec attaches
// Retry-After to every error response, so a permission or licence 403 with
// a Retry-After is an ErrForbidden for ops, not a quota pause that would
// loop forever (issue #16).
func TestForbiddenIsNotTakenForAQuota(t *testing.T) {
	forbidden := func(remaining, code, msg string) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "60")
			if remaining != "" {
				w.Header().Set("RateLimit-HourlyRemaining", remaining)
				w.Header().Set("RateLimit-HourlyLimit", "1000")
			}
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
		}
	}
	for _, tc := range []struct {
		name  string
		step  func(w http.ResponseWriter)
		quota bool
	}{
		{"permission, quota left", forbidden("900", "NO_PERMISSION", "You do not have access to this company."), false},
		{"licence expired, no quota headers", forbidden("", "", "La licenza è scaduta"), false},
		{"scope missing, no quota headers", forbidden("", "NO_PERMISSION", "The access token does not have the required scope: issued_documents.invoices:r"), false},
		{"hourly quota at 0", forbidden("0", "", "Hai superato il limite di richieste API consentite."), true},
		{"quota words, no headers", forbidden("", "", "Hai superato il limite di richieste API consentite."), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := scripted(t, tc.step)
			c := newClient(t, srv.URL, fic.StaticToken(secretToken), nil)
			_, err := c.GetIssuedDocument(context.Background(), 7, 1)
			var qe *fic.QuotaError
			if got := errors.As(err, &qe); got != tc.quota {
				t.Fatalf("quota = %v (%v), want %v", got, err, tc.quota)
			}
			if !tc.quota && !errors.Is(err, fic.ErrForbidden) {
				t.Fatalf("%v, want ErrForbidden", err)
			}
		})
	}
}

// A 429's Retry-After is waited as FIC asks and does not use up the
// retries meant for failures (issue #16: four 429s in the 5-minute window
// exhausted them).
func TestRateLimitWaitsDoNotBurnRetries(t *testing.T) {
	tooMany := status(http.StatusTooManyRequests, "1", `{"error":{"message":"Too Many Attempts."}}`)
	srv, n := scripted(t, tooMany, tooMany, tooMany, tooMany, tooMany, tooMany)
	c := newClient(t, srv.URL, fic.StaticToken(secretToken), nil) // MaxRetries 4 (default)
	start := time.Now()
	// After the six 429s the scripted server answers 200 with an empty
	// body: whatever that gives, it must not be a rate-limit failure.
	if _, err := c.GetIssuedDocument(context.Background(), 7, 1); errors.Is(err, fic.ErrRateLimited) {
		t.Fatalf("gave up on 429s: %v", err)
	}
	if got := n.Load(); got != 7 {
		t.Fatalf("%d requests, want 6 answered 429 then one more", got)
	}
	if took := time.Since(start); took < 5*time.Second {
		t.Fatalf("Retry-After not honoured: six waits of 1 s took %v", took)
	}
}

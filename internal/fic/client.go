package fic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/incasso-io/incasso/internal/fic/filter"
)

// DefaultBaseURL is the production API.
const DefaultBaseURL = "https://api-v2.fattureincloud.it"

// maxBody bounds a response body: a page of 100 detailed documents is well
// under 2 MiB.
const maxBody = 32 << 20

// Config configures a Client. The zero value (plus credentials) talks to the
// production API with sensible defaults.
type Config struct {
	BaseURL    string       // default DefaultBaseURL
	HTTPClient *http.Client // shared by every Client of the process; default NewHTTPClient()
	Quotas     *Quotas      // shared per-company limits; default NewQuotas(Limits{}, Now)
	// MaxRetries bounds retries of 429, 5xx and network errors (default 4).
	MaxRetries int
	// RetryBase is the first backoff step, doubled each retry with ±20%
	// jitter (default 500ms).
	RetryBase time.Duration
	// MaxRetryWait caps a single wait, including one asked by Retry-After
	// (default 60s).
	MaxRetryWait time.Duration
	UserAgent    string
	Logger       *slog.Logger
	Now          func() time.Time
	// OnResponse, if set, is called after every HTTP exchange with the
	// company, a low-cardinality endpoint name and the status (0 for a network
	// error). The poller feeds Prometheus with it.
	OnResponse func(companyID int64, endpoint string, status int)
}

// NewHTTPClient returns the HTTP client to share: keep-alive, bounded
// timeouts, enough idle connections for many companies.
func NewHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 64
	tr.IdleConnTimeout = 90 * time.Second
	tr.ResponseHeaderTimeout = 30 * time.Second
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// Client talks to FIC API v2 on behalf of one connection (one set of
// credentials, which may reach several companies). It is safe for concurrent
// use.
type Client struct {
	cfg   Config
	base  string
	creds Credentials
}

// New returns a client. creds is required.
func New(cfg Config, creds Credentials) (*Client, error) {
	if creds == nil {
		return nil, errors.New("fic: credentials are required")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("fic: invalid base URL %q", cfg.BaseURL)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = NewHTTPClient()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Quotas == nil {
		cfg.Quotas = NewQuotas(Limits{}, cfg.Now)
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 4
	}
	if cfg.RetryBase == 0 {
		cfg.RetryBase = 500 * time.Millisecond
	}
	if cfg.MaxRetryWait == 0 {
		cfg.MaxRetryWait = 60 * time.Second
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "incasso/1 (+https://github.com/incasso-io/incasso)"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), creds: creds}, nil
}

// Quota returns what FIC last reported for the company.
func (c *Client) Quota(companyID int64) Quota { return c.cfg.Quotas.Get(companyID) }

// request describes one API call.
type request struct {
	company  int64 // 0 for user-level endpoints (no company quota)
	method   string
	path     string
	query    url.Values
	body     any
	endpoint string // metric label
}

// hintBackoff wraps go-retry's exponential backoff so that a Retry-After the
// server sent replaces the computed delay for the next attempt.
type hintBackoff struct {
	next    retry.Backoff
	hint    time.Duration
	hasHint bool
	cap     time.Duration
	// A 429's Retry-After is waited in full, up to the short-term window,
	// without using up a retry: the request is not failing, it is early.
	rate      time.Duration
	hasRate   bool
	rateWaits int
}

// RateLimitWindow is FIC's short-term window (its documented 5 minutes):
// the longest a 429's Retry-After is waited.
const RateLimitWindow = 5 * time.Minute

// maxRateWaits bounds the 429 waits of one request.
const maxRateWaits = 12

func (b *hintBackoff) Next() (time.Duration, bool) {
	if b.hasRate && b.rateWaits < maxRateWaits {
		b.hasRate = false
		b.rateWaits++
		return b.rate, false
	}
	b.hasRate = false
	d, stop := b.next.Next()
	if stop {
		return 0, true
	}
	if b.hasHint {
		d, b.hasHint = b.hint, false
	}
	return min(d, b.cap), false
}

func (b *hintBackoff) setHint(d time.Duration) { b.hint, b.hasHint = d, true }

func (b *hintBackoff) setRate(d time.Duration) { b.rate, b.hasRate = min(d, RateLimitWindow), true }

// do performs r and decodes a 2xx JSON body into out (if non-nil).
func (c *Client) do(ctx context.Context, r request, out any) error {
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("fic: encode request: %w", err)
		}
	}
	target := c.base + r.path
	shown := r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
		shown += "?" + r.query.Encode()
	}
	b := &hintBackoff{
		next: retry.WithMaxRetries(uint64(c.cfg.MaxRetries), retry.WithJitterPercent(20, retry.NewExponential(c.cfg.RetryBase))),
		cap:  c.cfg.MaxRetryWait,
	}
	refreshed := false
	return retry.Do(ctx, b, func(ctx context.Context) error {
		if err := c.cfg.Quotas.wait(ctx, r.company); err != nil {
			return err
		}
		tok, err := c.creds.Token(ctx)
		if err != nil {
			return err
		}
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, r.method, target, rd)
		if err != nil {
			return fmt.Errorf("fic: build request %s %s: %w", r.method, shown, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", c.cfg.UserAgent)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.cfg.HTTPClient.Do(req)
		if err != nil {
			c.report(r, 0)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// url.Error holds the URL, which never carries the token.
			return retry.RetryableError(fmt.Errorf("%w: %s %s: %v", ErrUnavailable, r.method, shown, err))
		}
		defer resp.Body.Close()
		c.report(r, resp.StatusCode)
		c.cfg.Quotas.observe(r.company, resp.Header)
		raw, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			if rerr != nil {
				// Dropped mid-body: a transport fault, worth a retry.
				return retry.RetryableError(fmt.Errorf("%w: %s %s: read body: %v", ErrUnavailable, r.method, shown, rerr))
			}
			if len(raw) > maxBody {
				return fmt.Errorf("%w: %s %s: body larger than %d bytes", ErrMalformed, r.method, shown, maxBody)
			}
			if out == nil || resp.StatusCode == http.StatusNoContent {
				return nil
			}
			if b, ok := out.(*[]byte); ok { // the caller decodes
				*b = raw
				return nil
			}
			if err := json.Unmarshal(raw, out); err != nil {
				var de *DecodeError
				if errors.As(err, &de) {
					return err
				}
				return fmt.Errorf("%w: %s %s: %v", ErrMalformed, r.method, shown, err)
			}
			return nil
		}
		apiErr := c.apiError(r.method, shown, resp, raw)
		switch {
		case resp.StatusCode == http.StatusUnauthorized:
			if refreshed {
				apiErr.kind = ErrUnauthorized
				return apiErr
			}
			refreshed = true
			if _, err := c.creds.Refresh(ctx); err != nil {
				return errors.Join(err, apiErr)
			}
			b.setHint(0)
			return retry.RetryableError(apiErr)
		case resp.StatusCode == http.StatusForbidden:
			if quotaExhausted(resp.Header, apiErr) {
				reset := c.cfg.Now().Add(apiErr.RetryAfter)
				c.cfg.Quotas.pauseAll(ctx, r.company, reset)
				apiErr.kind = ErrQuotaExhausted
				return &QuotaError{APIError: apiErr, CompanyID: r.company, ResetAt: reset}
			}
			apiErr.kind = ErrForbidden
			return apiErr
		case resp.StatusCode == http.StatusTooManyRequests:
			apiErr.kind = ErrRateLimited
			if apiErr.RetryAfter > 0 {
				b.setRate(apiErr.RetryAfter)
			}
			return retry.RetryableError(apiErr)
		case resp.StatusCode >= 500:
			apiErr.kind = ErrUnavailable
			if apiErr.RetryAfter > 0 {
				b.setHint(apiErr.RetryAfter)
			}
			return retry.RetryableError(apiErr)
		case resp.StatusCode == http.StatusNotFound:
			apiErr.kind = ErrNotFound
		default:
			apiErr.kind = ErrInvalidRequest
		}
		return apiErr
	})
}

func (c *Client) report(r request, status int) {
	if c.cfg.OnResponse != nil {
		c.cfg.OnResponse(r.company, r.endpoint, status)
	}
}

// apiError reads FIC's error body in any of its known shapes.
func (c *Client) apiError(method, path string, resp *http.Response, raw []byte) *APIError {
	e := &APIError{Method: method, Path: path, Status: resp.StatusCode}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), c.cfg.Now()); ok {
		e.RetryAfter = d
	}
	var body struct {
		Error            json.RawMessage `json:"error"`
		ErrorDescription string          `json:"error_description"`
	}
	if json.Unmarshal(raw, &body) == nil && len(body.Error) > 0 {
		var obj struct {
			Message string `json:"message"`
			Code    any    `json:"code"`
		}
		var s string
		switch {
		case json.Unmarshal(body.Error, &s) == nil: // OAuth style
			e.Code, e.Message = s, body.ErrorDescription
		case json.Unmarshal(body.Error, &obj) == nil:
			e.Message = obj.Message
			if obj.Code != nil {
				e.Code = fmt.Sprint(obj.Code)
			}
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// ---- endpoints ----

// ListUserCompanies returns the companies the credentials can reach
// (GET /user/companies), flattening an accountant's controlled companies.
func (c *Client) ListUserCompanies(ctx context.Context) ([]Company, error) {
	var out struct {
		Data struct {
			Companies []Company `json:"companies"`
		} `json:"data"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/user/companies", endpoint: "user_companies"}, &out); err != nil {
		return nil, err
	}
	var all []Company
	for _, co := range out.Data.Companies {
		all = append(all, co)
		all = append(all, co.ControlledCompanies...)
	}
	return all, nil
}

// DetailedFields is the explicit field list Incasso needs when fieldset is
// not used: everything the receivables snapshot reads, including
// payments_list, which the default list fieldset omits.
var DetailedFields = []string{
	"id", "type", "number", "numeration", "date", "year", "subject", "visible_subject",
	"currency", "language", "amount_net", "amount_vat", "amount_gross", "amount_due_discount",
	"amount_withholding_tax", "use_split_payment", "entity", "payments_list", "next_due_date",
	"seen_date", "e_invoice", "ei_status", "ei_data", "is_marked", "locked", "created_at", "updated_at",
}

// ListOptions select what ListIssuedDocuments returns.
type ListOptions struct {
	Type DocumentType // required: TypeInvoice or TypeCreditNote
	// Fieldset is "detailed" by default; set Fields to ask for an explicit
	// list instead (then Fieldset is not sent).
	Fieldset string
	Fields   []string
	Sort     string      // default "id": stable, contiguous pages
	PerPage  int         // default and maximum 100
	Query    filter.Expr // optional q filter
	// StartPage resumes a scan (default 1).
	StartPage int
}

// Page is one page of a list.
type Page struct {
	Number    int
	LastPage  int
	PerPage   int
	Total     int
	Documents []Document
	// Errors holds the documents of this page that could not be decoded
	// (each a *DecodeError naming the document). The rest of the page is
	// still returned.
	Errors []error
}

func (o ListOptions) values(page int) (url.Values, error) {
	if o.Type == "" {
		return nil, errors.New("fic: list issued documents: type is required")
	}
	v := url.Values{}
	v.Set("type", string(o.Type))
	if len(o.Fields) > 0 {
		// FIC answers 500 to fields made only of list fields
		// (fields=payments_list; fattureincloud/api#325); a scan needs the
		// id anyway, so it always leads.
		fields := o.Fields
		if !slices.Contains(fields, "id") {
			fields = append([]string{"id"}, fields...)
		}
		v.Set("fields", strings.Join(fields, ","))
	} else {
		fs := o.Fieldset
		if fs == "" {
			fs = "detailed"
		}
		v.Set("fieldset", fs)
	}
	s := o.Sort
	if s == "" {
		s = "id"
	}
	v.Set("sort", s)
	pp := o.PerPage
	if pp <= 0 || pp > 100 {
		pp = 100
	}
	v.Set("page", strconv.Itoa(page))
	v.Set("per_page", strconv.Itoa(pp))
	if o.Query != nil {
		if err := filter.Check(o.Query); err != nil {
			return nil, fmt.Errorf("fic: list issued documents: %w", err)
		}
		v.Set("q", o.Query.String())
	}
	return v, nil
}

// ListPage fetches one page of GET /c/{cid}/issued_documents.
func (c *Client) ListPage(ctx context.Context, companyID int64, opt ListOptions, page int) (Page, error) {
	q, err := opt.values(page)
	if err != nil {
		return Page{}, err
	}
	path := fmt.Sprintf("/c/%d/issued_documents", companyID)
	var raw []byte
	if err := c.do(ctx, request{company: companyID, method: http.MethodGet, path: path, query: q, endpoint: "list_issued_documents"}, &raw); err != nil {
		return Page{}, fmt.Errorf("fic: list %s page %d of company %d: %w", opt.Type, page, companyID, err)
	}
	p, err := DecodePage(raw, page)
	if err != nil {
		return Page{}, fmt.Errorf("fic: list %s page %d of company %d: %w", opt.Type, page, companyID, err)
	}
	return p, nil
}

// DecodePage decodes the body of a list response expected to be page
// number page. A body that is not a pagination envelope, or is another
// page, is an ErrMalformed; a document that does not decode is reported in
// Page.Errors by id and the rest of the page is kept.
func DecodePage(raw []byte, page int) (Page, error) {
	// Fast path: the whole page decodes at once. Any problem falls back to
	// decoding document by document, so one bad document is reported by id
	// and the rest of the page is kept.
	var fast struct {
		CurrentPage *int       `json:"current_page"`
		LastPage    *int       `json:"last_page"`
		PerPage     FlexString `json:"per_page"`
		Total       *int       `json:"total"`
		Data        []Document `json:"data"`
	}
	fastOK := json.Unmarshal(raw, &fast) == nil && fast.Data != nil
	var docs []json.RawMessage
	if !fastOK {
		var env struct {
			CurrentPage *int              `json:"current_page"`
			LastPage    *int              `json:"last_page"`
			PerPage     FlexString        `json:"per_page"`
			Total       *int              `json:"total"`
			Data        []json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			return Page{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		fast.CurrentPage, fast.LastPage, fast.PerPage, fast.Total = env.CurrentPage, env.LastPage, env.PerPage, env.Total
		if env.Data == nil {
			fast.CurrentPage = nil // reported as an incomplete envelope below
		}
		docs = env.Data
	}
	if fast.CurrentPage == nil || fast.LastPage == nil {
		return Page{}, fmt.Errorf("%w: pagination envelope incomplete (current_page, last_page, data)", ErrMalformed)
	}
	if *fast.CurrentPage != page {
		return Page{}, fmt.Errorf("%w: server returned page %d", ErrMalformed, *fast.CurrentPage)
	}
	p := Page{Number: page, LastPage: *fast.LastPage}
	if fast.Total != nil {
		p.Total = *fast.Total
	}
	p.PerPage, _ = strconv.Atoi(string(fast.PerPage))
	if fastOK {
		p.Documents = make([]Document, 0, len(fast.Data))
		for i := range fast.Data {
			d := &fast.Data[i]
			if err := d.validate(); err != nil {
				if _, ok := err.(*DecodeError); !ok {
					err = &DecodeError{DocumentID: "?", Err: err}
				}
				p.Errors = append(p.Errors, err)
				continue
			}
			p.Documents = append(p.Documents, *d)
		}
		return p, nil
	}
	p.Documents = make([]Document, 0, len(docs))
	for _, raw := range docs {
		d, err := DecodeDocument(raw)
		if err != nil {
			p.Errors = append(p.Errors, err)
			continue
		}
		p.Documents = append(p.Documents, d)
	}
	return p, nil
}

// Pages streams the pages of a list, one request per page, so memory stays
// O(page). Iteration stops at the first error, which is yielded. A scan is
// complete only if the iteration ends without an error and every page had
// an empty Errors.
func (c *Client) Pages(ctx context.Context, companyID int64, opt ListOptions) iter.Seq2[Page, error] {
	return func(yield func(Page, error) bool) {
		page := max(opt.StartPage, 1)
		for {
			p, err := c.ListPage(ctx, companyID, opt, page)
			if err != nil {
				yield(Page{Number: page}, err)
				return
			}
			if !yield(p, nil) {
				return
			}
			if page >= p.LastPage || len(p.Documents)+len(p.Errors) == 0 {
				return
			}
			page++
		}
	}
}

// ListIssuedDocuments streams documents of one type. A document that cannot
// be decoded is yielded as an error (a *DecodeError) and the stream goes on;
// a failed page ends the stream with its error.
func (c *Client) ListIssuedDocuments(ctx context.Context, companyID int64, opt ListOptions) iter.Seq2[Document, error] {
	return func(yield func(Document, error) bool) {
		for p, err := range c.Pages(ctx, companyID, opt) {
			if err != nil {
				yield(Document{}, err)
				return
			}
			for _, e := range p.Errors {
				if !yield(Document{}, e) {
					return
				}
			}
			for _, d := range p.Documents {
				if !yield(d, nil) {
					return
				}
			}
		}
	}
}

// GetIssuedDocument fetches one document with the detailed fieldset.
// Returns an error wrapping ErrNotFound if it does not exist (deleted
// documents are in the bin).
func (c *Client) GetIssuedDocument(ctx context.Context, companyID, documentID int64) (Document, error) {
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	path := fmt.Sprintf("/c/%d/issued_documents/%d", companyID, documentID)
	q := url.Values{"fieldset": {"detailed"}}
	if err := c.do(ctx, request{company: companyID, method: http.MethodGet, path: path, query: q, endpoint: "get_issued_document"}, &env); err != nil {
		return Document{}, fmt.Errorf("fic: get issued document %d of company %d: %w", documentID, companyID, err)
	}
	if len(env.Data) == 0 || string(env.Data) == "null" {
		return Document{}, fmt.Errorf("fic: get issued document %d of company %d: %w: no data", documentID, companyID, ErrMalformed)
	}
	return DecodeDocument(env.Data)
}

// ListBinIssuedDocuments returns the deleted issued documents
// (GET /c/{cid}/bin/issued_documents; not paginated).
func (c *Client) ListBinIssuedDocuments(ctx context.Context, companyID int64) ([]Document, error) {
	var env struct {
		Data []json.RawMessage `json:"data"`
	}
	path := fmt.Sprintf("/c/%d/bin/issued_documents", companyID)
	if err := c.do(ctx, request{company: companyID, method: http.MethodGet, path: path, endpoint: "list_bin_issued_documents"}, &env); err != nil {
		return nil, fmt.Errorf("fic: list bin of company %d: %w", companyID, err)
	}
	out := make([]Document, 0, len(env.Data))
	for _, raw := range env.Data {
		d, err := DecodeDocument(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// quotaExhausted tells a quota 403 from a permission or licence one. The
// spec attaches Retry-After to every error response, so Retry-After alone
// proves nothing: the remaining-quota headers decide when FIC sends them
// (one at 0: quota; all above 0: not), then the error's words, and only
// with no other evidence does a Retry-After mean a quota.
func quotaExhausted(h http.Header, e *APIError) bool {
	seen, zero := false, false
	for _, name := range []string{"RateLimit-HourlyRemaining", "RateLimit-MonthlyRemaining"} {
		if v := h.Get(name); v != "" {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				seen = true
				zero = zero || n <= 0
			}
		}
	}
	if seen {
		return zero
	}
	msg := strings.ToLower(e.Code + " " + e.Message)
	for _, w := range []string{"quota", "limit", "too many", "superato", "troppe richieste"} {
		if strings.Contains(msg, w) {
			return true
		}
	}
	for _, w := range []string{"permission", "permess", "scope", "licen", "access", "accesso", "expired", "scadut"} {
		if strings.Contains(msg, w) {
			return false
		}
	}
	return e.RetryAfter > 0 || h.Get("Retry-After") != ""
}

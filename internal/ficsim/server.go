package ficsim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures the sandbox. Zero values get sensible defaults.
type Config struct {
	Seed        uint64
	Companies   int // default 2
	Invoices    int // per company, default 500
	CreditNotes int // per company, default Invoices/20
	// Token is a manual token accepted for every company with every scope.
	Token string // default "demo-token"
	// ClientID/ClientSecret of the one registered OAuth app.
	ClientID     string // default "ficsim-client"
	ClientSecret string // default "ficsim-secret"
	// RedirectURLs allowed for the app; empty accepts any http(s) URL.
	RedirectURLs []string
	// AccessTTL is the OAuth access token lifetime (FIC: 24h).
	AccessTTL time.Duration
	// AppID is the aid claim of webhook JWTs.
	AppID string // default "ficsim-app"
	// Issuer is the iss claim and ce-source of webhooks.
	Issuer string // default https://api-v2.fattureincloud.it
	// DefaultPerPage applies when per_page is absent (docs say 50, the spec 5).
	DefaultPerPage int
	// LaxFilters accepts q filters and sorts on fields outside the
	// third-party filterable/sortable lists (unverified, so strict by
	// default).
	LaxFilters bool
	// Lenient turns off the behaviours that users observed on real FIC but
	// that no document states (see docs/fic-facts.md): LaxFilters, a 500 for
	// fields made only of list fields (fields=payments_list,
	// fattureincloud/api#325), and the OAuth-shaped 401 body for a refused
	// token. The sandbox is strict by default: never kinder than FIC.
	Lenient bool
	// AllowHTTPSinks accepts http:// webhook sinks. FIC refuses them, so
	// does the sandbox by default; the local demo and tests whose poller
	// listens on plain http turn this on.
	AllowHTTPSinks bool
	Quotas         QuotaConfig
	Faults         Faults
	// WebhookRetryBase is the first retry interval of a failed delivery
	// (doubling; 4 attempts in total as FIC documents). Default 2s.
	WebhookRetryBase time.Duration
	WebhookKey       *ecdsa.PrivateKey // default: generated
	// WebhookRootCAs are the CAs trusted for https sinks (default: the
	// system's), e.g. an httptest TLS server's certificate in tests.
	WebhookRootCAs *x509.CertPool
	// FilesURL is the sandbox's own base URL for documents' PDF links
	// (`url`); empty: the spec example's bare file name (see files.go).
	FilesURL string
	Now      func() time.Time
	Logger   *slog.Logger
}

// Server is the sandbox. Create with New; serve with Handler.
type Server struct {
	cfg      Config
	filesURL atomic.Pointer[string] // Config.FilesURL, settable once serving (SetFilesURL)
	log      *slog.Logger
	mu       sync.Mutex
	rnd      *mrand.Rand // faults; guarded by mu
	offset   time.Duration
	comps    map[int64]*company
	ids      []int64 // company ids in order
	nextID   int64
	oauth    *oauthState
	stats    map[int64]map[string]int
	wh       *webhooks
	faults   Faults
	qcfg     QuotaConfig
	nextSub  int
	histSeq  int64 // last HistoryEntry.Seq, across companies
}

// New builds a seeded sandbox.
func New(cfg Config) (*Server, error) {
	if cfg.Companies == 0 {
		cfg.Companies = 2
	}
	if cfg.Companies < 0 || cfg.Invoices < 0 || cfg.CreditNotes < 0 {
		return nil, errors.New("ficsim: counts must not be negative")
	}
	if cfg.Invoices == 0 {
		cfg.Invoices = 500
	}
	if cfg.CreditNotes == 0 {
		cfg.CreditNotes = cfg.Invoices / 20
	}
	if cfg.Token == "" {
		cfg.Token = "demo-token"
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "ficsim-client"
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = "ficsim-secret"
	}
	if cfg.AccessTTL == 0 {
		cfg.AccessTTL = 24 * time.Hour
	}
	if cfg.AppID == "" {
		cfg.AppID = "ficsim-app"
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "https://api-v2.fattureincloud.it"
	}
	if cfg.DefaultPerPage == 0 {
		cfg.DefaultPerPage = 50
	}
	if cfg.WebhookRetryBase == 0 {
		cfg.WebhookRetryBase = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Lenient {
		cfg.LaxFilters = true
	}
	cfg.Quotas.setDefaults()
	if cfg.WebhookKey == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("ficsim: generate webhook key: %w", err)
		}
		cfg.WebhookKey = k
	}
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger,
		rnd:    mrand.New(mrand.NewPCG(cfg.Seed, 0xF1C)),
		comps:  map[int64]*company{},
		nextID: 10_000_001,
		oauth:  newOAuthState(),
		stats:  map[int64]map[string]int{},
		faults: cfg.Faults,
		qcfg:   cfg.Quotas,
	}
	s.wh = newWebhooks(s)
	s.seed()
	s.SetFilesURL(cfg.FilesURL)
	return s, nil
}

// Close stops webhook deliveries.
func (s *Server) Close() { s.wh.close() }

// now is the sandbox clock: the configured clock plus the admin offset.
func (s *Server) now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nowLocked()
}

func (s *Server) nowLocked() time.Time { return s.cfg.Now().Add(s.offset) }

// CompanyIDs returns the seeded company ids.
func (s *Server) CompanyIDs() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ids)
}

// Token returns the manual token.
func (s *Server) Token() string { return s.cfg.Token }

// WebhookPublicKey returns the key webhook JWTs are signed with.
func (s *Server) WebhookPublicKey() *ecdsa.PublicKey { return &s.cfg.WebhookKey.PublicKey }

// Handler returns the HTTP handler: FIC API v2, OAuth, and /_sim/ admin.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	api := func(pattern, endpoint string, scope scopeFunc, h http.HandlerFunc) {
		mux.Handle(pattern, s.apiMiddleware(endpoint, scope, h))
	}
	api("GET /user/companies", "user_companies", nil, s.handleUserCompanies)
	api("GET /c/{cid}/issued_documents", "list_issued_documents", scopeByTypeParam, s.handleList)
	api("GET /c/{cid}/issued_documents/{id}", "get_issued_document", nil, s.handleGet)
	api("GET /c/{cid}/bin/issued_documents", "list_bin_issued_documents", anyDocScope, s.handleBinList)
	api("GET /c/{cid}/bin/issued_documents/{id}", "get_bin_issued_document", anyDocScope, s.handleBinGet)
	api("DELETE /c/{cid}/bin/issued_documents/{id}", "delete_bin_issued_document", s.binWriteScope, s.handleBinDelete)
	api("POST /c/{cid}/bin/issued_documents/{id}/recover", "recover_bin_issued_document", s.binWriteScope, s.handleBinRecover)
	api("GET /c/{cid}/entities/clients/{id}", "get_client", func(*http.Request) []string { return []string{"entity.clients:r"} }, s.handleClientGet)
	api("GET /c/{cid}/info/payment_accounts", "payment_accounts", nil, s.handlePaymentAccounts)
	api("GET /c/{cid}/subscriptions", "subscriptions", nil, s.handleSubList)
	api("POST /c/{cid}/subscriptions", "subscriptions", nil, s.handleSubCreate)
	api("GET /c/{cid}/subscriptions/{sid}", "subscription", nil, s.handleSubGet)
	api("PUT /c/{cid}/subscriptions/{sid}", "subscription", nil, s.handleSubModify)
	api("DELETE /c/{cid}/subscriptions/{sid}", "subscription", nil, s.handleSubDelete)
	api("POST /c/{cid}/subscriptions/{sid}/verify", "subscription_verify", nil, s.handleSubVerify)
	mux.HandleFunc("GET /_files/{name}", s.handleFile)
	mux.HandleFunc("GET /oauth/authorize", s.handleAuthorize)
	mux.HandleFunc("POST /oauth/token", s.handleToken)
	s.adminRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", "Not found: "+r.URL.Path)
	})
	return mux
}

// ---- JSON helpers ----

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b := buf.Bytes()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError writes FIC's {"error":{"message","code"}} body.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	e := map[string]any{"message": msg}
	if code != "" {
		e["code"] = code
	}
	writeJSON(w, status, map[string]any{"error": e})
}

// writeValidation writes a 422 in Laravel/FIC validation shape.
func writeValidation(w http.ResponseWriter, field, msg string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": map[string]any{
		"message":           "The given data was invalid.",
		"validation_result": map[string][]string{field: {msg}},
	}})
}

func pathInt(r *http.Request, name string) (int64, bool) {
	v, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	return v, err == nil && v > 0
}

// ---- list ----

// filterable and sortable fields of listIssuedDocuments, per the
// third-party list the notes quote (plus id, which the client sorts on).
var (
	filterable = map[string]bool{"id": true, "type": true, "entity.id": true, "entity.name": true, "date": true, "number": true,
		"numeration": true, "amount_net": true, "amount_gross": true, "next_due_date": true}
	sortable = map[string]bool{"id": true, "entity.name": true, "date": true, "number": true, "numeration": true,
		"amount_net": true, "amount_gross": true, "next_due_date": true}
	docTypes = map[string]bool{"invoice": true, "quote": true, "proforma": true, "receipt": true, "delivery_note": true,
		"credit_note": true, "order": true, "work_report": true, "supplier_order": true, "self_own_invoice": true, "self_supplier_invoice": true}
)

func (s *Server) handleUserCompanies(w http.ResponseWriter, r *http.Request) {
	auth := authFrom(r)
	s.mu.Lock()
	var list []map[string]any
	for _, id := range s.ids {
		c := s.comps[id]
		if !auth.canAccess(id) {
			continue
		}
		list = append(list, map[string]any{
			"id": c.ID, "name": c.Name, "type": "company", "vat_number": c.VATNumber, "tax_code": c.TaxCode,
			"access_token": auth.token, "connection_id": 1, "controlled_companies": []any{},
			"fic_plan": "premium", "fic_license_expire": s.nowLocked().AddDate(1, 0, 0).Format(time.DateOnly),
		})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"companies": list}})
}

// handlePaymentAccounts serves the company's one bank account (and the
// cash account FIC creates for every company, which has no IBAN).
func (s *Server) handlePaymentAccounts(w http.ResponseWriter, r *http.Request) {
	cid, _ := pathInt(r, "cid")
	writeJSON(w, http.StatusOK, map[string]any{"data": []map[string]any{
		{"id": cid*10 + 1, "name": "Cassa", "type": "standard", "iban": nil, "sia": nil, "cuc": nil, "virtual": false},
		{"id": cid*10 + 2, "name": "Conto corrente", "type": "bank", "iban": IBANOf(cid), "sia": nil, "cuc": nil, "virtual": false},
	}})
}

// IBANOf is the sandbox company's IBAN: Italian, with valid check digits.
func IBANOf(cid int64) string {
	bban := fmt.Sprintf("X0542811101%012d", cid%1_000_000_000_000)
	mod := 0
	for _, c := range bban + "IT00" {
		if c >= 'A' && c <= 'Z' {
			mod = (mod*100 + int(c-'A'+10)) % 97
		} else {
			mod = (mod*10 + int(c-'0')) % 97
		}
	}
	return fmt.Sprintf("IT%02d%s", 98-mod, bban)
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	cid, _ := pathInt(r, "cid")
	q := r.URL.Query()
	typ := q.Get("type")
	if typ == "" {
		writeValidation(w, "type", "The type field is required.")
		return
	}
	if !docTypes[typ] {
		writeValidation(w, "type", "The selected type is invalid.")
		return
	}
	perPage := s.cfg.DefaultPerPage
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeValidation(w, "per_page", "The per page must be at least 1.")
			return
		}
		if n > 100 {
			writeValidation(w, "per_page", "The per page may not be greater than 100.")
			return
		}
		perPage = n
	}
	page := 1
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeValidation(w, "page", "The page must be at least 1.")
			return
		}
		page = n
	}
	if onlyListFields(q.Get("fields")) && !s.cfg.Lenient {
		// Observed on FIC (fattureincloud/api#325): fields made only of
		// list fields fail with a 500; adding any plain field (id) works.
		writeError(w, http.StatusInternalServerError, "", "An unexpected error occurred. Contact support for more information.")
		return
	}
	render, err := renderer(q.Get("fieldset"), q.Get("fields"), true)
	if err != nil {
		writeValidation(w, "fieldset", err.Error())
		return
	}
	var expr filterExpr
	if v := q.Get("q"); v != "" {
		e, err := s.parseFilter(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "INVALID_FILTER", err.Error())
			return
		}
		expr = e
	}
	keys, err := s.parseSort(q.Get("sort"))
	if err != nil {
		writeValidation(w, "sort", err.Error())
		return
	}

	s.mu.Lock()
	c := s.comps[cid]
	s.applyScanFault(c, typ, page)
	matched := make([]*Document, 0, len(c.order))
	for _, id := range c.order {
		d := c.docs[id]
		if d.Type != typ || (expr != nil && !expr.Eval(docGetter(d))) {
			continue
		}
		matched = append(matched, d)
	}
	if len(keys) > 0 && !(len(keys) == 1 && keys[0].field == "id" && !keys[0].desc) {
		sortDocs(matched, keys)
	}
	total := len(matched)
	lastPage := max(1, (total+perPage-1)/perPage)
	from := (page - 1) * perPage
	to := min(from+perPage, total)
	data := make([]json.RawMessage, 0, perPage)
	if from < total {
		for _, d := range matched[from:to] {
			data = append(data, render(d))
		}
	}
	s.mu.Unlock()

	base := s.pageURL(r, cid)
	env := map[string]any{
		"current_page": page, "per_page": perPage, "total": total, "last_page": lastPage,
		"first_page_url": base(1), "last_page_url": base(lastPage), "path": base(0),
		"next_page_url": nil, "prev_page_url": nil, "from": nil, "to": nil,
	}
	if from < total {
		env["from"], env["to"] = from+1, to
	}
	if page < lastPage {
		env["next_page_url"] = base(page + 1)
	}
	if page > 1 {
		env["prev_page_url"] = base(page - 1)
	}
	s.writeAPIBody(w, withData(env, data, true))
}

// pageURL returns absolute page URLs keeping the other query parameters, as
// FIC's (Laravel) paginator does. page 0 yields the bare path.
func (s *Server) pageURL(r *http.Request, cid int64) func(int) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	path := fmt.Sprintf("%s://%s/c/%d/issued_documents", scheme, r.Host, cid)
	return func(p int) string {
		if p == 0 {
			return path
		}
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		return path + "?" + q.Encode()
	}
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	cid, _ := pathInt(r, "cid")
	id, ok := pathInt(r, "id")
	if !ok {
		writeError(w, http.StatusNotFound, "", "Document not found")
		return
	}
	render, err := renderer(r.URL.Query().Get("fieldset"), r.URL.Query().Get("fields"), false)
	if err != nil {
		writeValidation(w, "fieldset", err.Error())
		return
	}
	s.mu.Lock()
	d, found := s.comps[cid].docs[id]
	var out json.RawMessage
	if found {
		if !authFrom(r).hasScope(docScope(d.Type)) {
			s.mu.Unlock()
			writeError(w, http.StatusForbidden, "NO_PERMISSION", "You do not have the permission to access this resource.")
			return
		}
		out = render(d)
	}
	s.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, "", "Document not found")
		return
	}
	s.writeAPIBody(w, withData(nil, []json.RawMessage{out}, false))
}

func (s *Server) handleBinList(w http.ResponseWriter, r *http.Request) {
	cid, _ := pathInt(r, "cid")
	auth := authFrom(r)
	s.mu.Lock()
	c := s.comps[cid]
	ids := make([]int64, 0, len(c.bin))
	for id, d := range c.bin {
		if auth.hasScope(docScope(d.Type)) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	data := make([]json.RawMessage, 0, len(ids))
	for _, id := range ids {
		data = append(data, renderJSON(c.bin[id], basicView))
	}
	s.mu.Unlock()
	s.writeAPIBody(w, withData(nil, data, true))
}

func (s *Server) handleBinGet(w http.ResponseWriter, r *http.Request) {
	cid, _ := pathInt(r, "cid")
	id, _ := pathInt(r, "id")
	s.mu.Lock()
	d, ok := s.comps[cid].bin[id]
	var out json.RawMessage
	if ok {
		out = renderJSON(d, detailedView)
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "", "Document not found")
		return
	}
	s.writeAPIBody(w, withData(nil, []json.RawMessage{out}, false))
}

// docScope is the read scope of a document type.
func docScope(typ string) string {
	switch typ {
	case "credit_note":
		return "issued_documents.credit_notes:r"
	case "self_own_invoice", "self_supplier_invoice":
		return "issued_documents.self_invoices:r"
	}
	return "issued_documents." + typ + "s:r"
}

type scopeFunc func(r *http.Request) []string

func scopeByTypeParam(r *http.Request) []string {
	if t := r.URL.Query().Get("type"); t != "" {
		return []string{docScope(t)}
	}
	return nil
}

func anyDocScope(*http.Request) []string {
	return []string{"issued_documents.invoices:r", "issued_documents.credit_notes:r"}
}

var _ = url.Values{}

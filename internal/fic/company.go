package fic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/incasso-io/incasso/internal/receivables"
)

// PaymentAccount is one of a company's payment accounts (GET
// /c/{cid}/info/payment_accounts): where clients pay.
type PaymentAccount struct {
	ID      int64      `json:"id"`
	Name    string     `json:"name"`
	Type    string     `json:"type"` // standard, bank
	IBAN    FlexString `json:"iban"`
	Virtual bool       `json:"virtual"`
}

// ListPaymentAccounts returns a company's payment accounts.
func (c *Client) ListPaymentAccounts(ctx context.Context, companyID int64) ([]PaymentAccount, error) {
	var out struct {
		Data []PaymentAccount `json:"data"`
	}
	path := fmt.Sprintf("/c/%d/info/payment_accounts", companyID)
	if err := c.do(ctx, request{company: companyID, method: http.MethodGet, path: path, endpoint: "payment_accounts"}, &out); err != nil {
		return nil, fmt.Errorf("fic: payment accounts of company %d: %w", companyID, err)
	}
	return out.Data, nil
}

// GetClient returns a client's current record (GET
// /c/{cid}/entities/clients/{id}, scope entity.clients:r): today's e-mail,
// PEC and address, where a document carries those of the day it was
// issued.
func (c *Client) GetClient(ctx context.Context, companyID, clientID int64) (receivables.Client, error) {
	var out struct {
		Data *Entity `json:"data"`
	}
	path := fmt.Sprintf("/c/%d/entities/clients/%d", companyID, clientID)
	if err := c.do(ctx, request{company: companyID, method: http.MethodGet, path: path, endpoint: "get_client"}, &out); err != nil {
		return receivables.Client{}, fmt.Errorf("fic: client %d of company %d: %w", clientID, companyID, err)
	}
	if out.Data == nil {
		return receivables.Client{}, fmt.Errorf("fic: client %d of company %d: %w: no data", clientID, companyID, ErrMalformed)
	}
	cl := out.Data.Client()
	if cl.ID == 0 {
		cl.ID = clientID
	}
	return cl, nil
}

// ErrNoPDF: FIC gave no downloadable PDF link for the document.
var ErrNoPDF = errors.New("fic: no PDF link for the document")

// maxPDF bounds a document's PDF.
const maxPDF = 10 << 20

// DocumentPDF downloads a document's PDF through the temporary link FIC
// gives in its `url` field. The link must be absolute https on a
// Fatture in Cloud host (fattureincloud.it and its subdomains) or on the
// API's own host (the sandbox), redirects may not leave those hosts, and
// the body must be a PDF of at most 10 MB: a document is FIC's data, not a
// reason to fetch whatever it names. What FIC really puts in `url` is not
// verified here (the spec's example is a bare file name): anything else is
// ErrNoPDF, and the letter goes without the attachment.
func (c *Client) DocumentPDF(ctx context.Context, companyID, documentID int64) ([]byte, error) {
	d, err := c.GetIssuedDocument(ctx, companyID, documentID)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(d.URL)
	if err != nil || !u.IsAbs() || !c.fileHost(u) {
		return nil, fmt.Errorf("%w: %q", ErrNoPDF, d.URL)
	}
	var tr http.RoundTripper
	if c.cfg.HTTPClient != nil {
		tr = c.cfg.HTTPClient.Transport
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: tr,
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) >= 3 || !c.fileHost(r.URL) {
				return fmt.Errorf("%w: redirect to %s", ErrNoPDF, r.URL.Host)
			}
			return nil
		}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoPDF, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fic: PDF of document %d: %w", documentID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: HTTP %d", ErrNoPDF, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPDF+1))
	if err != nil {
		return nil, fmt.Errorf("fic: PDF of document %d: %w", documentID, err)
	}
	if len(b) > maxPDF || !bytes.HasPrefix(b, []byte("%PDF-")) {
		return nil, fmt.Errorf("%w: not a PDF of at most 10 MB", ErrNoPDF)
	}
	return b, nil
}

// fileHost reports whether a file link may be fetched.
func (c *Client) fileHost(u *url.URL) bool {
	base, _ := url.Parse(c.cfg.BaseURL)
	h := strings.ToLower(u.Hostname())
	switch {
	case base != nil && u.Scheme == base.Scheme && u.Host == base.Host:
		return true // the API's own host (the sandbox)
	case u.Scheme != "https":
		return false
	}
	return h == "fattureincloud.it" || strings.HasSuffix(h, ".fattureincloud.it")
}

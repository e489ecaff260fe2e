package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/shopspring/decimal"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/safehttp"
)

// Hand-offs are signed per the Standard Webhooks spec, like every HTTP
// delivery (package delivery): webhook-id (the CloudEvent id),
// webhook-timestamp and webhook-signature "v1,<base64 HMAC-SHA256 of
// id.timestamp.body>". A platform secret "whsec_<base64>" is used as is;
// a secret set before Standard Webhooks (any other string) is the same HMAC
// key its "whsec_"+base64(secret) form names, so a platform can verify with
// a Standard Webhooks library without a new secret.
//
// Until the platform has switched, the legacy headers are sent as well
// (Webhook.LegacySignature, DUNNING_PLATFORM_LEGACY_SIGNATURE): an
// HMAC-SHA256 over "<timestamp>.<body>" with the secret, hex-encoded:
//
//	Incasso-Timestamp: 1764000000
//	Incasso-Signature: v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
const (
	TimestampHeader = "Incasso-Timestamp"
	SignatureHeader = "Incasso-Signature"
)

// Sign returns the v1 signature of body at timestamp ts.
func Sign(secret []byte, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a hand-off request's signature as a receiver would.
func Verify(secret []byte, ts, sig string, body []byte, now time.Time, tolerance time.Duration) error {
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad timestamp")
	}
	if d := now.Sub(time.Unix(t, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("timestamp outside tolerance")
	}
	if !hmac.Equal([]byte(Sign(secret, t, body)), []byte(sig)) {
		return fmt.Errorf("signature mismatch")
	}
	return nil
}

// Platform is a collection platform receiving hand-offs.
type Platform struct {
	URL    string
	Secret []byte
}

// Webhook hands cases off to collection platforms: a structured-mode
// CloudEvent (HTTP binding, JSON) carrying the dossier, signed, retried with
// backoff; only configured hosts can be called, through HTTPClient, which
// must be a safehttp client (the default is safehttp.Policy{}: https to
// public addresses, no redirect to another origin).
type Webhook struct {
	Platforms  map[string]Platform // by policy platform name
	HTTPClient *http.Client
	Retries    int           // default 4
	Backoff    time.Duration // default 1s, doubling
	Now        func() time.Time
	// LegacySignature adds the Incasso-Timestamp/Incasso-Signature headers
	// of earlier versions to the Standard Webhooks ones.
	LegacySignature bool
}

// StandardKey is a platform secret as a Standard Webhooks signer.
func StandardKey(secret []byte) (*standardwebhooks.Webhook, error) {
	if s := string(secret); strings.HasPrefix(s, "whsec_") {
		return standardwebhooks.NewWebhook(s)
	}
	return standardwebhooks.NewWebhookRaw(secret)
}

var _ dunning.Sender = (*Webhook)(nil)

// Dossier is the data of dunning.escalated hand-offs.
type Dossier struct {
	CompanyID int64          `json:"company_id"`
	Client    any            `json:"client"`
	Invoices  []dossierItem  `json:"invoices"`
	History   []dunning.Sent `json:"history"`
	Total     string         `json:"total_due"`
	Creditor  creditor       `json:"creditor"`
}

type dossierItem struct {
	Invoice      any    `json:"invoice"`
	DaysOverdue  int    `json:"days_overdue"`
	AmountDue    string `json:"amount_due"`
	Credited     string `json:"credited"`
	Interest     string `json:"interest"`
	Compensation string `json:"compensation"`
}

// DossierOf builds the hand-off data of a message: per invoice what is
// demanded (the late installments less credit notes), with interest.
func DossierOf(m dunning.Message) Dossier {
	d := Dossier{CompanyID: m.CompanyID, Client: m.Client, History: m.History, Creditor: creditorOf(m.Creditor)}
	total := decimal.Zero
	for _, it := range m.Items {
		d.Invoices = append(d.Invoices, dossierItem{Invoice: it.Invoice, DaysOverdue: it.DaysOverdue, AmountDue: it.Demand.Total.StringFixed(2),
			Credited: it.Demand.Credited.StringFixed(2), Interest: it.Interest.StringFixed(2), Compensation: it.Compensation.StringFixed(2)})
		total = total.Add(it.Demand.Total).Add(it.Interest).Add(it.Compensation)
	}
	d.Total = total.StringFixed(2)
	return d
}

// Recall is the data of a dunning.recalled message: the platform must stop
// collecting an invoice it was handed.
type Recall struct {
	CompanyID int64  `json:"company_id"`
	InvoiceID int64  `json:"invoice_id"`
	Number    string `json:"number"`
	Reason    string `json:"reason"` // paid, credited, deleted, written_off
	Invoice   any    `json:"invoice"`
}

type creditor struct {
	Name      string `json:"name,omitempty"`
	VATNumber string `json:"vat_number,omitempty"`
	Address   string `json:"address,omitempty"`
	IBAN      string `json:"iban,omitempty"`
}

func creditorOf(c dunning.Creditor) creditor {
	return creditor{Name: c.Name, VATNumber: c.VATNumber, Address: c.Address, IBAN: c.IBAN}
}

// Send implements dunning.Sender.
func (w *Webhook) Send(ctx context.Context, m dunning.Message) error {
	p, ok := w.Platforms[m.Platform]
	if !ok {
		return fmt.Errorf("%w: no collection platform %q configured", dunning.ErrUndeliverable, m.Platform)
	}
	if _, err := url.Parse(p.URL); err != nil {
		return fmt.Errorf("%w: platform %q URL: %v", dunning.ErrUndeliverable, m.Platform, err)
	}
	e := event.New()
	e.SetID(m.MessageID)
	e.SetSource("/incasso/companies/" + strconv.FormatInt(m.CompanyID, 10))
	e.SetType("dunning.escalated")
	e.SetSubject("clients/" + m.Client.Name)
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	e.SetTime(now().UTC())
	var data any = DossierOf(m)
	if m.Template == "recall" {
		e.SetType("dunning.recalled")
		inv := m.Items[0].Invoice
		e.SetSubject("invoices/" + strconv.FormatInt(inv.ID, 10))
		data = Recall{CompanyID: m.CompanyID, InvoiceID: inv.ID, Number: inv.Number, Reason: m.Recall, Invoice: inv}
	}
	if err := e.SetData(event.ApplicationJSON, data); err != nil {
		return fmt.Errorf("%w: %v", dunning.ErrUndeliverable, err)
	}
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("%w: %v", dunning.ErrUndeliverable, err)
	}
	hc := w.HTTPClient
	if hc == nil {
		hc = safehttp.Policy{}.Client() // https on 443 to public addresses, no redirect off the origin
	}
	retries, wait := w.Retries, w.Backoff
	if retries <= 0 {
		retries = 4
	}
	if wait <= 0 {
		wait = time.Second
	}
	var last error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			wait *= 2
		}
		at := now()
		ts := at.Unix()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		key, err := StandardKey(p.Secret)
		if err != nil {
			return fmt.Errorf("%w: platform %s secret: %v", dunning.ErrUndeliverable, m.Platform, err)
		}
		sig, err := key.Sign(e.ID(), at, body)
		if err != nil {
			return fmt.Errorf("%w: sign: %v", dunning.ErrUndeliverable, err)
		}
		req.Header.Set(standardwebhooks.HeaderWebhookID, e.ID())
		req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
		if w.LegacySignature {
			req.Header.Set(TimestampHeader, strconv.FormatInt(ts, 10))
			req.Header.Set(SignatureHeader, Sign(p.Secret, ts, body))
		}
		resp, err := hc.Do(req)
		if errors.Is(err, safehttp.ErrRefused) {
			// A redirect off the platform's origin, or an address on the
			// network Incasso runs in: never sent, and never retried.
			return fmt.Errorf("%w: hand-off to %s: %v", dunning.ErrUndeliverable, m.Platform, err)
		}
		if err != nil {
			last = err
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			return nil
		case resp.StatusCode == 408 || resp.StatusCode == 429 || resp.StatusCode >= 500:
			last = fmt.Errorf("platform %s: HTTP %d", m.Platform, resp.StatusCode)
		default:
			return fmt.Errorf("%w: platform %s refused the hand-off: HTTP %d", dunning.ErrUndeliverable, m.Platform, resp.StatusCode)
		}
	}
	return fmt.Errorf("hand-off to %s: %w", m.Platform, last)
}

// AllowedHost reports whether a hand-off URL's host is in the allow-list.
func AllowedHost(raw string, hosts []string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && slices.Contains(hosts, u.Hostname())
}

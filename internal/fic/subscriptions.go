package fic

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
)

// Webhook event types Incasso subscribes to.
const (
	EventInvoiceCreate    = "it.fattureincloud.webhooks.issued_documents.invoices.create"
	EventInvoiceUpdate    = "it.fattureincloud.webhooks.issued_documents.invoices.update"
	EventInvoiceDelete    = "it.fattureincloud.webhooks.issued_documents.invoices.delete"
	EventCreditNoteCreate = "it.fattureincloud.webhooks.issued_documents.credit_notes.create"
	EventCreditNoteUpdate = "it.fattureincloud.webhooks.issued_documents.credit_notes.update"
	EventCreditNoteDelete = "it.fattureincloud.webhooks.issued_documents.credit_notes.delete"
	EventWelcome          = "it.fattureincloud.webhooks.subscriptions.welcome"
	// EventEInvoiceStatus: an e-invoice's SDI status changed (ids are the
	// issued documents'). Whether FIC also sends an invoice update for it
	// is not documented: Incasso subscribes to both.
	EventEInvoiceStatus = "it.fattureincloud.webhooks.issued_documents.e_invoices.status_update"
	// EventClientUpdate: a client's record changed (ids are the clients').
	// The poller drops the cached contacts so the next reminder reads the
	// new e-mail and PEC.
	EventClientUpdate = "it.fattureincloud.webhooks.entities.clients.update"
)

// SubscribedEventTypes are every type the poller subscribes to: the
// documents' and the clients' updates.
var SubscribedEventTypes = append(slices.Clone(ReceivablesEventTypes), EventClientUpdate)

// ReceivablesEventTypes are the webhook types the poller needs.
var ReceivablesEventTypes = []string{
	EventInvoiceCreate, EventInvoiceUpdate, EventInvoiceDelete,
	EventCreditNoteCreate, EventCreditNoteUpdate, EventCreditNoteDelete,
	EventEInvoiceStatus,
}

// Subscription is a WebhooksSubscription.
type Subscription struct {
	ID                 string              `json:"id,omitempty"`
	Sink               string              `json:"sink,omitempty"`
	Verified           bool                `json:"verified,omitempty"`
	Types              []string            `json:"types,omitempty"`
	Config             *SubscriptionConfig `json:"config,omitempty"`
	VerificationMethod string              `json:"verification_method,omitempty"` // header (default) or query
}

// SubscriptionConfig selects the CloudEvents content mode.
type SubscriptionConfig struct {
	Mapping string `json:"mapping,omitempty"` // binary (default) or structured
}

// Warnings tolerates FIC sending warnings as a string (the spec example) or
// as a list (the schema).
type Warnings []string

// UnmarshalJSON accepts null, a string or a list of strings.
func (w *Warnings) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s != "" {
			*w = Warnings{s}
		}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("warnings: want a string or a list of strings")
	}
	*w = l
	return nil
}

func subsPath(cid int64, id string) string {
	p := fmt.Sprintf("/c/%d/subscriptions", cid)
	if id != "" {
		p += "/" + url.PathEscape(id)
	}
	return p
}

// ListSubscriptions lists the app's webhook subscriptions for a company.
func (c *Client) ListSubscriptions(ctx context.Context, companyID int64) ([]Subscription, error) {
	var out struct {
		Data []Subscription `json:"data"`
	}
	if err := c.do(ctx, request{company: companyID, method: http.MethodGet, path: subsPath(companyID, ""), endpoint: "subscriptions"}, &out); err != nil {
		return nil, fmt.Errorf("fic: list subscriptions of company %d: %w", companyID, err)
	}
	return out.Data, nil
}

// CreateSubscription registers a sink; FIC then verifies it with a GET
// carrying a challenge. Duplicated types come back as warnings.
func (c *Client) CreateSubscription(ctx context.Context, companyID int64, s Subscription) (Subscription, Warnings, error) {
	var out struct {
		Data     Subscription `json:"data"`
		Warnings Warnings     `json:"warnings"`
	}
	body := map[string]any{"data": s}
	if err := c.do(ctx, request{company: companyID, method: http.MethodPost, path: subsPath(companyID, ""), body: body, endpoint: "subscriptions"}, &out); err != nil {
		return Subscription{}, nil, fmt.Errorf("fic: create subscription for company %d: %w", companyID, err)
	}
	return out.Data, out.Warnings, nil
}

// GetSubscription reads one subscription.
func (c *Client) GetSubscription(ctx context.Context, companyID int64, id string) (Subscription, error) {
	var out struct {
		Data Subscription `json:"data"`
	}
	if err := c.do(ctx, request{company: companyID, method: http.MethodGet, path: subsPath(companyID, id), endpoint: "subscription"}, &out); err != nil {
		return Subscription{}, fmt.Errorf("fic: get subscription %s of company %d: %w", id, companyID, err)
	}
	return out.Data, nil
}

// ModifySubscription changes a subscription. Changing the sink makes FIC
// verify it again.
func (c *Client) ModifySubscription(ctx context.Context, companyID int64, s Subscription) (Subscription, Warnings, error) {
	var out struct {
		Data     Subscription `json:"data"`
		Warnings Warnings     `json:"warnings"`
	}
	body := map[string]any{"data": Subscription{Sink: s.Sink, Types: s.Types, Config: s.Config, VerificationMethod: s.VerificationMethod}}
	if err := c.do(ctx, request{company: companyID, method: http.MethodPut, path: subsPath(companyID, s.ID), body: body, endpoint: "subscription"}, &out); err != nil {
		return Subscription{}, nil, fmt.Errorf("fic: modify subscription %s of company %d: %w", s.ID, companyID, err)
	}
	return out.Data, out.Warnings, nil
}

// DeleteSubscription removes a subscription.
func (c *Client) DeleteSubscription(ctx context.Context, companyID int64, id string) error {
	if err := c.do(ctx, request{company: companyID, method: http.MethodDelete, path: subsPath(companyID, id), endpoint: "subscription"}, nil); err != nil {
		return fmt.Errorf("fic: delete subscription %s of company %d: %w", id, companyID, err)
	}
	return nil
}

// VerifySubscription asks FIC to run the verification handshake again
// (at most 5 attempts, one every 10 minutes, per FIC's docs).
func (c *Client) VerifySubscription(ctx context.Context, companyID int64, id, method string) error {
	if method == "" {
		method = "header"
	}
	body := map[string]any{"data": map[string]string{"verification_method": method}}
	if err := c.do(ctx, request{company: companyID, method: http.MethodPost, path: subsPath(companyID, id) + "/verify", body: body, endpoint: "subscription_verify"}, nil); err != nil {
		return fmt.Errorf("fic: verify subscription %s of company %d: %w", id, companyID, err)
	}
	return nil
}

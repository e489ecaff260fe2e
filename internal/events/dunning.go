package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Dunning event types: outcomes of the dunning service, on
// incasso.events.<company_id>.dunning.<type>.
const (
	DunningReminderSent   = "dunning.reminder_sent"
	DunningEscalated      = "dunning.escalated"
	DunningDeliveryFailed = "dunning.delivery_failed"
	DunningPaused         = "dunning.paused"
	DunningResumed        = "dunning.resumed"
	DunningClosed         = "dunning.closed"
)

// AllDunningTypes lists the dunning event types in documentation order.
var AllDunningTypes = []string{DunningReminderSent, DunningEscalated, DunningDeliveryFailed, DunningPaused, DunningResumed, DunningClosed}

// DunningDataSchema is the ce-dataschema of dunning events; the schema
// file is docs/schemas/dunning-event.v1.json.
const DunningDataSchema = "https://github.com/incasso-io/incasso/blob/main/docs/schemas/dunning-event.v1.json"

// DunningData is the JSON payload of every dunning.* event.
type DunningData struct {
	CompanyID    int64    `json:"company_id"`
	InvoiceID    int64    `json:"invoice_id"`
	State        string   `json:"state"` // the case's state after the event
	Stage        int      `json:"stage"` // index of the next stage of the policy
	ClosedReason string   `json:"closed_reason,omitempty"`
	Document     Document `json:"document"`
	Detail       Detail   `json:"detail"`
}

// Detail says what happened: a delivery (reminder_sent, delivery_failed,
// escalated) or a change of the case's state (closed, paused, resumed).
type Detail struct {
	// Deliveries.
	StageName         string          `json:"stage,omitempty"`
	Channel           string          `json:"channel,omitempty"` // email, pec, webhook
	MessageID         string          `json:"message_id,omitempty"`
	InvoicesInMessage int             `json:"invoices_in_message,omitempty"`
	Error             string          `json:"error,omitempty"`   // delivery_failed
	Dossier           json.RawMessage `json:"dossier,omitempty"` // escalated: what the platform received
	// PossiblySent marks a reminder_sent whose delivery is not confirmed
	// (the connection dropped before the server's answer, or the process
	// died between sending and recording): it may have reached the client.
	PossiblySent bool `json:"possibly_sent,omitempty"`
	// Changes of state.
	From     string `json:"from,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Operator string `json:"operator,omitempty"`
}

// BuildDunning turns a dunning outcome into a validated CloudEvent with its
// subject. id must be unique per occurrence (see ID).
func BuildDunning(typ, id string, at time.Time, d DunningData) (string, event.Event, error) {
	e := event.New(event.CloudEventsVersionV1)
	e.SetID(id)
	e.SetSource(Source(d.CompanyID))
	e.SetType(typ)
	e.SetSubject(DocumentSubject("invoice", d.InvoiceID))
	e.SetTime(at.UTC())
	e.SetDataSchema(DunningDataSchema)
	if err := e.SetData(event.ApplicationJSON, d); err != nil {
		return "", e, fmt.Errorf("events: encode %s: %w", typ, err)
	}
	if err := e.Validate(); err != nil {
		return "", e, fmt.Errorf("events: invalid event %s: %w", typ, err)
	}
	return Subject(d.CompanyID, typ), e, nil
}

// ParseDunningData decodes the data of a dunning event.
func ParseDunningData(e event.Event) (DunningData, error) {
	var d DunningData
	if err := json.Unmarshal(e.Data(), &d); err != nil {
		return d, fmt.Errorf("%w: data of %s %s: %v", ErrInvalid, e.Type(), e.ID(), err)
	}
	return d, nil
}

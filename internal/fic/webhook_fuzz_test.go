package fic_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/incasso-io/incasso/internal/fic"
)

// FuzzParseNotification: any request body and headers give a notification
// or an ErrWebhookPayload, never a panic.
func FuzzParseNotification(f *testing.F) {
	f.Add([]byte(`{"data":{"ids":[1,2]}}`), "1.0", "company:5", "application/json")
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","subject":"company:1","data":{"ids":[3]}}`), "", "", "application/cloudevents+json")
	f.Add([]byte(`{"data":{"ids":["a"]}}`), "1.0", "company:x", "application/json")
	f.Fuzz(func(t *testing.T, body []byte, sv, subject, ct string) {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/fic", bytes.NewReader(body))
		r.Header.Set("Content-Type", ct)
		if sv != "" {
			r.Header.Set("ce-specversion", sv)
			r.Header.Set("ce-id", "1:abc")
			r.Header.Set("ce-source", "https://api-v2.fattureincloud.it")
			r.Header.Set("ce-type", fic.EventInvoiceUpdate)
			r.Header.Set("ce-subject", subject)
		}
		n, err := fic.ParseNotification(r)
		if err != nil {
			if !errors.Is(err, fic.ErrWebhookPayload) {
				t.Fatalf("error without ErrWebhookPayload: %v", err)
			}
			return
		}
		if n.CompanyID <= 0 {
			t.Fatalf("accepted without a company: %+v", n)
		}
		for _, id := range n.IDs {
			if id <= 0 {
				t.Fatalf("accepted a non-positive id: %+v", n)
			}
		}
	})
}

// FuzzVerify: arbitrary Authorization values never verify (no key signs
// them) and never panic.
func FuzzVerify(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add("Bearer eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln")
	f.Add("Bearer eyJhbGciOiJub25lIn0.e30.")
	f.Add("Basic abc")
	f.Fuzz(func(t *testing.T, auth string) {
		v := &fic.Verifier{Key: &key.PublicKey, Audience: "https://x/webhooks/fic"}
		if _, err := v.Verify(context.Background(), auth); err == nil {
			t.Fatalf("forged token verified: %q", auth)
		}
	})
}

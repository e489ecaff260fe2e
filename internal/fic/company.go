package fic

import (
	"context"
	"fmt"
	"net/http"
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

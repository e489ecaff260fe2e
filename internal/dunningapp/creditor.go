package dunningapp

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/policy"
)

// creditors says who a company's letters are from and how to pay: the
// policy's creditor block, completed from FIC where it is silent — the
// company's name and VAT number (GET /user/companies) and the IBAN of its
// first bank account (GET /c/{cid}/info/payment_accounts). FIC has no
// registered office for a company (its company info carries none): that
// and the signature come from the policy only. Answers are cached for an
// hour, so letters cost no FIC request each.
type creditors struct {
	fic  func(ctx context.Context, cid int64) (*fic.Client, error)
	pols *policy.Set
	log  *slog.Logger
	ttl  time.Duration

	mu    sync.Mutex
	cache map[int64]cachedCreditor
}

type cachedCreditor struct {
	c  dunning.Creditor
	at time.Time
}

func (c *creditors) get(ctx context.Context, cid int64) (dunning.Creditor, error) {
	conf := dunning.CreditorFrom(c.pols.For(cid).Creditor)
	ttl := c.ttl
	if ttl <= 0 {
		ttl = time.Hour
	}
	c.mu.Lock()
	if e, ok := c.cache[cid]; ok && time.Since(e.at) < ttl {
		c.mu.Unlock()
		return merge(conf, e.c), nil
	}
	c.mu.Unlock()
	var fromFIC dunning.Creditor
	client, err := c.fic(ctx, cid)
	if err != nil {
		return conf, fmt.Errorf("creditor of company %d: %w", cid, err)
	}
	companies, err := client.ListUserCompanies(ctx)
	if err != nil {
		return conf, fmt.Errorf("creditor of company %d: %w", cid, err)
	}
	for _, co := range companies {
		if co.ID == cid {
			fromFIC.Name, fromFIC.VATNumber, fromFIC.TaxCode = co.Name, string(co.VATNumber), string(co.TaxCode)
		}
	}
	accounts, err := client.ListPaymentAccounts(ctx, cid)
	if err != nil {
		c.log.Warn("payment accounts unavailable: letters carry the policy's IBAN only", "company_id", cid, "error", err)
	}
	for _, a := range accounts {
		if iban := strings.ReplaceAll(string(a.IBAN), " ", ""); a.Type == "bank" && iban != "" && policy.ValidIBAN(iban) {
			fromFIC.IBAN = iban
			break
		}
	}
	c.mu.Lock()
	if c.cache == nil {
		c.cache = map[int64]cachedCreditor{}
	}
	c.cache[cid] = cachedCreditor{fromFIC, time.Now()}
	c.mu.Unlock()
	return merge(conf, fromFIC), nil
}

// merge keeps what the configuration sets and takes the rest from FIC.
func merge(conf, fic dunning.Creditor) dunning.Creditor {
	pick := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	out := conf
	out.Name, out.VATNumber, out.TaxCode = pick(conf.Name, fic.Name), pick(conf.VATNumber, fic.VATNumber), pick(conf.TaxCode, fic.TaxCode)
	if conf.IBAN == "" {
		out.IBAN = fic.IBAN
	}
	return out
}

package pollerapp

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
)

// `poller doctor` checks an account read-only and says which settings to
// use; run here against the sandbox in strict (FIC as documented and
// observed) and lenient mode.
func TestDoctor(t *testing.T) {
	for _, lenient := range []bool{false, true} {
		t.Run(map[bool]string{false: "strict", true: "lenient"}[lenient], func(t *testing.T) {
			sim, fsrv := ficsimtest.Start(t, ficsim.Config{Seed: 2, Companies: 2, Invoices: 12, Lenient: lenient})
			cid := sim.CompanyIDs()[1]
			var out bytes.Buffer
			err := Command(context.Background(), []string{"doctor"}, []string{"FIC_BASE_URL=" + fsrv.URL, "FIC_ACCESS_TOKEN=" + sim.Token(),
				fmt.Sprintf("FIC_COMPANY_ID=%d", cid), "FIC_CLIENT_LIMITS_DISABLED=true"}, &out, &out)
			if err != nil {
				t.Fatalf("doctor: %v\n%s", err, out.String())
			}
			o := out.String()
			for _, w := range []string{"companies             OK", fmt.Sprintf("checking company %d", cid), "list invoices", "installments          OK",
				"filter next_due_date  OK", "invoice PDF links     WARN", "payment accounts      OK", "webhook subscription  WARN", "quota headers         OK",
				"client contacts       OK", map[bool]string{false: "filter updated_at     WARN", true: "filter updated_at     OK"}[lenient]} {
				if !strings.Contains(o, w) {
					t.Errorf("lacks %q:\n%s", w, o)
				}
			}
			if n := strings.Count(o, "\n"); n < 10 {
				t.Errorf("%d lines:\n%s", n, o)
			}
			// Within a small budget.
			total := 0
			for _, n := range sim.Stats()[cid] {
				total += n
			}
			if total > 10 {
				t.Errorf("%d requests to the company", total)
			}
		})
	}
}

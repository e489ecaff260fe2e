package policy_test

import (
	"testing"

	"github.com/incasso-io/incasso/internal/policy"
)

// FuzzParse: any YAML gives a valid policy set or an error, never a panic,
// and what is accepted satisfies the invariants the engine relies on.
func FuzzParse(f *testing.F) {
	f.Add("stages:\n  - {name: a, offset_days: 1, channels: [email], template: reminder}\n")
	f.Add("stages: [\n")
	f.Add("companies:\n  \"1\": {stages: []}\nstages:\n  - {name: a, offset_days: -3, channels: [pec], template: formal_notice, min_amount_due: \"1\"}\n")
	f.Fuzz(func(t *testing.T, doc string) {
		s, err := policy.Parse("fuzz.yaml", []byte(doc))
		if err != nil {
			return
		}
		check := func(p *policy.Policy) {
			if len(p.Stages) == 0 {
				t.Fatal("accepted a policy without stages")
			}
			for i := 1; i < len(p.Stages); i++ {
				if p.Stages[i].OffsetDays <= p.Stages[i-1].OffsetDays {
					t.Fatal("accepted non-increasing offsets")
				}
			}
		}
		check(&s.Default)
		for _, p := range s.Companies {
			check(&p)
		}
	})
}

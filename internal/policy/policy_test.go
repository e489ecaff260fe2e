package policy_test

import (
	"strings"
	"testing"

	"github.com/incasso-io/incasso/internal/policy"
)

func TestDefaultPolicy(t *testing.T) {
	s := policy.Default()
	p := s.For(123)
	var offsets []int
	for _, st := range p.Stages {
		offsets = append(offsets, st.OffsetDays)
	}
	if len(offsets) != 5 || offsets[0] != -3 || offsets[4] != 30 || !p.Stages[4].Escalate || p.Stages[3].Channels[0] != policy.PEC {
		t.Errorf("default stages: %+v", p.Stages)
	}
	if p.Stages[3].MinAmountDue.String() != "50" {
		t.Errorf("min amount: %v", p.Stages[3].MinAmountDue)
	}
}

func TestValidationErrorsNameFileLineField(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"type error", "stages:\n  - name: a\n    offset_days: soon\n", []string{"p.yaml:3:", "soon"}},
		{"unknown field", "stagez: []\n", []string{"p.yaml:1:", "stagez"}},
		{"bad channel and template", "stages:\n  - name: a\n    offset_days: 1\n    channels: [fax]\n    template: nope\n",
			[]string{"p.yaml:4: stages[0].channels[0]: \"fax\"", "p.yaml:5: stages[0].template"}},
		{"offsets not increasing", "stages:\n  - {name: a, offset_days: 5, channels: [email], template: reminder}\n  - {name: b, offset_days: 5, channels: [email], template: reminder}\n",
			[]string{"p.yaml:3: stages[1].offset_days"}},
		{"bad window", "send_window_start: \"9\"\nstages:\n  - {name: a, offset_days: 1, channels: [email], template: reminder}\n", []string{"p.yaml:1: send_window_start"}},
		{"bad amount", "stages:\n  - {name: a, offset_days: 1, channels: [email], template: reminder, min_amount_due: \"lots\"}\n", []string{"p.yaml:2: stages[0].min_amount_due"}},
		{"webhook without platform", "stages:\n  - {name: a, offset_days: 1, channels: [webhook], template: handoff}\n", []string{"stages[0].channels", "platform"}},
		{"escalate not last", "stages:\n  - {name: a, offset_days: 1, channels: [email], template: reminder, escalate: true}\n  - {name: b, offset_days: 2, channels: [email], template: reminder}\n", []string{"stages[0].escalate"}},
		{"bad company", "stages:\n  - {name: a, offset_days: 1, channels: [email], template: reminder}\ncompanies:\n  acme:\n    min_gap_days: 1\n", []string{"p.yaml:4: companies.acme"}},
		{"company override invalid", "stages:\n  - {name: a, offset_days: 1, channels: [email], template: reminder}\ncompanies:\n  \"42\":\n    min_gap_days: -1\n", []string{"companies.42.min_gap_days"}},
		{"not yaml", "stages: [\n", []string{"p.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.Parse("p.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestCompanyOverride(t *testing.T) {
	s, err := policy.Parse("p.yaml", []byte(`
min_gap_days: 3
stages:
  - {name: a, offset_days: 1, channels: [email], template: reminder}
companies:
  "42":
    min_gap_days: 7
    fallback_language: en
`))
	if err != nil {
		t.Fatal(err)
	}
	if p := s.For(42); p.MinGapDays != 7 || p.Language != "en" || len(p.Stages) != 1 {
		t.Errorf("override: %+v", p)
	}
	if p := s.For(1); p.MinGapDays != 3 || p.Language != "it" {
		t.Errorf("default: %+v", p)
	}
}
